"""Records, split and pixel cache of a run, set up the same way by train, calibrate and evaluate."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from planet_terrain_plugin.core.contract import ModelContract

from .config import TrainConfig
from .dataset import GrayCache, Record, load_all
from .splits import make_or_load, write_split

#: Pixel caches live here (git-ignored), shared across runs with the same files and stretch.
CACHE_DIR = "runs/cache"


@dataclass
class RunData:
    records: list[Record]
    assignment: dict[str, str]
    splits: dict[str, list[Record]]
    cache: GrayCache
    contract: ModelContract

    def known(self, split: str) -> list[Record]:
        return [r for r in self.splits[split] if r.known]

    def other(self, split: str) -> list[Record]:
        return [r for r in self.splits[split] if not r.known]


def load_run_data(cfg: TrainConfig, contract: ModelContract, split_file: str = "", cache_dir: str | None = CACHE_DIR,
                  write_split_to: str | Path | None = None) -> RunData:
    """Read the datasets, build or read the (leak-checked) split and fill the 8-bit cache."""
    records = load_all(cfg.data_root, cfg.v1_root, cfg.use_v1, cfg.max_images)
    assignment, splits = make_or_load(records, tuple(cfg.split_fractions), split_file or cfg.split_file)
    if write_split_to:
        write_split(write_split_to, assignment, splits, tuple(cfg.split_fractions))
    return RunData(records, assignment, splits, GrayCache(records, contract, cache_dir), contract)

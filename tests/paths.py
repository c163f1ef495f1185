"""Where the shared, read-only data lives: ../shared/data beside the checkout (PLANET_TERRAIN_SHARED overrides)."""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PLANET_TERRAIN_SHARED", REPO.parent / "shared")) / "data"
RASTERS = SHARED_DATA / "rasters"
HIRISE_V3 = SHARED_DATA / "hirise-map-proj-v3"
HIRISE_V1 = SHARED_DATA / "hirise-map-proj-v1"

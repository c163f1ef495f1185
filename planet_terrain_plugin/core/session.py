"""One onnxruntime session per model file, on the best execution provider that actually starts.

Order: CUDA, then CoreML (Apple), then CPU. The user can force one with the ``PLANET_TERRAIN_PROVIDER``
environment variable or the plugin setting (passed as ``preferred``). A provider that is listed by onnxruntime
but fails to start (missing CUDA libraries are common) falls back to the next with a logged warning, and the
provider that really runs is reported, because "is my GPU used?" is the first question users ask.
Sessions are cached by (path, mtime, size, preference, layout): a click reuses the session, a re-exported file
does not. :func:`load_model` is the one way a model is loaded; the contract is read from the session it opens.

Threads: a click runs one image at a time with onnxruntime's default threads; a grid keeps several batches in
flight on the CPU (:func:`parallel_layout`), because concurrent single-threaded runs do not wait for each other
at every operator, nor all stop when the grid's reader or writer takes a core (README, "Performance").
"""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field

import numpy as np

from .contract import EMBEDDING, LOGITS, OOD_SCORE, ContractError, ModelContract, check_model_file, contract_of_session

LOG = logging.getLogger("planet_terrain")
PROVIDER_ORDER = ("CUDAExecutionProvider", "CoreMLExecutionProvider", "CPUExecutionProvider")
ENV_PROVIDER = "PLANET_TERRAIN_PROVIDER"
#: Short names accepted in settings and the environment variable.
PROVIDER_ALIASES = {"cuda": "CUDAExecutionProvider", "coreml": "CoreMLExecutionProvider",
                    "cpu": "CPUExecutionProvider"}


def import_onnxruntime():
    """Import onnxruntime or raise an ImportError that tells the user how to install it."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise ImportError(
            "onnxruntime is not installed in QGIS's Python. Install it with the plugin's dependency dialog, "
            "QPIP, or: python3 -m pip install --user onnxruntime") from exc
    return onnxruntime


def resolve_preference(preferred: str | None) -> str | None:
    """The provider the user asked for (argument first, then environment), as onnxruntime spells it."""
    choice = preferred or os.environ.get(ENV_PROVIDER, "")
    choice = choice.strip()
    if not choice or choice.lower() == "auto":
        return None
    full = PROVIDER_ALIASES.get(choice.lower(), choice)
    if full not in PROVIDER_ORDER:
        raise ValueError(f"unknown execution provider '{choice}'; use one of auto, cuda, coreml, cpu")
    return full


def candidate_providers(available: list[str], preferred: str | None) -> list[str]:
    """Providers to try, best first: the preferred one (if present), then the default order."""
    order = [p for p in PROVIDER_ORDER if p in available]
    if preferred:
        if preferred in available:
            order = [preferred] + [p for p in order if p != preferred]
        else:
            LOG.warning("Execution provider %s is not available in this onnxruntime build; using %s.",
                        preferred, order[0] if order else "none")
    if "CPUExecutionProvider" not in order:
        order.append("CPUExecutionProvider")
    return order


#: Most concurrent runs a grid keeps in flight on the CPU; more cores go to each run's own threads.
MAX_WORKERS = 4


@dataclass(frozen=True)
class ParallelLayout:
    """How a grid run spreads over the machine: ``workers`` runs in flight, ``threads`` intra-op threads each
    (0: onnxruntime's default)."""

    workers: int
    threads: int

    def describe(self) -> str:
        each = "onnxruntime's default threads" if self.threads == 0 else f"{self.threads} thread(s)"
        return f"{self.workers} concurrent run(s) of {each}"


class ModelRunError(RuntimeError):
    """onnxruntime failed to run the network on a batch; the message names the model and onnxruntime's reason."""


@dataclass
class TerrainModel:
    """A loaded model: its file, contract, live session and the provider that runs it."""

    path: str
    contract: ModelContract
    session: object
    provider: str
    provider_note: str
    input_name: str = field(default="")
    #: The batch size the network was exported with, when it is fixed (None: any batch size).
    fixed_batch: int | None = None
    #: How runs spread over the machine: a click's session runs one at a time on onnxruntime's default threads;
    #: a grid's CPU session was opened with the layout's threads and lets its runs overlap.
    layout: ParallelLayout = ParallelLayout(1, 0)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def concurrent(self) -> bool:
        """Runs may overlap (their threads were sized for that); else they are serialised."""
        return self.layout.threads > 0

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """Run the network on a float32 (N, 3, S, S) batch; returns (N, C) logits."""
        return self.run(batch).logits

    def run(self, batch: np.ndarray) -> "NetworkOutputs":
        """Run the network on a float32 (N, 3, S, S) batch; returns every output the contract names."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        s = self.contract.input_size
        if batch.ndim != 4 or batch.shape[1:] != (3, s, s):
            raise ValueError(f"batch shape {batch.shape} does not match the model input (N, 3, {s}, {s})")
        step = self.fixed_batch
        if step and len(batch) != step:  # a network exported for one batch size: feed it that many at a time
            parts = [np.concatenate([part, np.zeros((step - len(part),) + part.shape[1:], np.float32)])
                     if len(part) < step else part for part in (batch[i:i + step] for i in range(0, len(batch), step))]
            return NetworkOutputs.concatenate([self._run(part) for part in parts], len(batch))
        return self._run(batch)

    def _run(self, batch: np.ndarray) -> "NetworkOutputs":
        try:
            if self.concurrent:
                out = self.session.run(None, {self.input_name: batch})
            else:  # a multi-threaded session serves the map tool and Processing: overlapping runs would oversubscribe
                with self._lock:
                    out = self.session.run(None, {self.input_name: batch})
        except Exception as exc:  # onnxruntime's own exception types differ between builds
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelRunError(f"the model '{os.path.basename(self.path)}' failed on a batch of {len(batch)} "
                                f"image(s): {reason}") from exc
        return NetworkOutputs.of(dict(zip(self.contract.outputs, out)))


@dataclass(frozen=True)
class NetworkOutputs:
    """What one run of the network returns: logits always; the embedding and OOD score where the file has them."""

    logits: np.ndarray
    embedding: np.ndarray | None = None
    ood_score: np.ndarray | None = None

    @classmethod
    def of(cls, named: dict) -> "NetworkOutputs":
        def get(key: str) -> np.ndarray | None:
            return np.asarray(named[key]) if key in named else None
        return cls(np.asarray(named[LOGITS]), get(EMBEDDING), get(OOD_SCORE))

    @classmethod
    def concatenate(cls, parts: list["NetworkOutputs"], n: int) -> "NetworkOutputs":
        """Join the outputs of consecutive batches, keeping the first ``n`` rows."""
        def join(key: str):
            arrays = [getattr(p, key) for p in parts]
            return None if arrays[0] is None else np.concatenate(arrays)[:n]
        return cls(join("logits"), join("embedding"), join("ood_score"))


_CACHE: dict[tuple, TerrainModel] = {}
_REEXPORT = "Re-export the model with `make export`, or pick a model made for this plugin."
_CACHE_LOCK = threading.Lock()


def _check_io(sess, contract: ModelContract, path: str) -> tuple[str, int | None]:
    """The network's input name and fixed batch size (None when any batch size is accepted), or a ContractError
    naming what does not fit the contract."""
    inputs, outputs = sess.get_inputs(), sess.get_outputs()
    names = tuple(o.name for o in outputs)
    if len(inputs) != 1 or len(outputs) != len(contract.outputs):
        raise ContractError(path, None, f"has {len(inputs)} inputs and {len(outputs)} outputs; expected 1 and "
                            f"{len(contract.outputs)} ({', '.join(contract.outputs)}).", _REEXPORT)
    if len(names) > 1 and names != contract.outputs:
        raise ContractError(path, "outputs", f"names {list(contract.outputs)}, but the network outputs "
                            f"{list(names)}.", _REEXPORT)
    if inputs[0].type != "tensor(float)":
        raise ContractError(path, None, f"takes {inputs[0].type} input, but Planet Terrain feeds the network float "
                            "(normalised float32) images.", _REEXPORT)
    shape = list(inputs[0].shape)
    s = contract.input_size
    if len(shape) != 4 or any(isinstance(d, int) and d != want for d, want in zip(shape[1:], (3, s, s))):
        raise ContractError(path, "input_size", f"says {s}, but the network input is {shape}; expected [N, 3, {s}, {s}].", _REEXPORT)
    out_shape = list(outputs[0].shape)
    if len(out_shape) != 2 or (isinstance(out_shape[1], int) and out_shape[1] != contract.num_classes):
        raise ContractError(path, "classes", f"lists {contract.num_classes} classes, but the network outputs {out_shape}.", _REEXPORT)
    fixed = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
    return inputs[0].name, fixed


def open_session(path: str, provider: str = "CPUExecutionProvider", threads: int = 0):
    """An onnxruntime session for ``path`` on ``provider`` with ``threads`` intra-op threads (0: the default).

    On the CPU, which every build has, a failure means the file is not a model onnxruntime can load: a
    :class:`ContractError` naming it. Another provider's failure is raised as is, for the caller to fall back.
    """
    ort = import_onnxruntime()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(path, opts, providers=[provider])
    except Exception as exc:  # onnxruntime raises several private exception types
        if provider != "CPUExecutionProvider":
            raise
        raise ContractError(path, None, f"is not a readable ONNX model ({type(exc).__name__}: {exc}).",
                            "The file may be truncated or not ONNX; re-export or re-install it.") from None


def load_model(path: str, preferred: str | None = None, grid: bool = False,
               cores: int | None = None) -> TerrainModel:
    """Load (or reuse) the model at ``path``. Raises ContractError for bad files, ImportError without onnxruntime.

    ``grid``: the session a grid run uses, laid out (:func:`parallel_layout`, ``cores`` physical cores) for the
    provider expected to run it, and again for the one that does if that one does not start; its ``layout``
    says how many runs to keep in flight. Otherwise a click's session: one run at a time.
    """
    want = resolve_preference(preferred)
    if not grid:
        return _load(path, want, ParallelLayout(1, 0))
    cores = physical_cores() if cores is None else cores
    expected = candidate_providers(import_onnxruntime().get_available_providers(), want)[0]
    model = _load(path, want, parallel_layout(expected, cores))
    layout = parallel_layout(model.provider, cores)
    if model.provider != expected and layout.threads:  # e.g. CUDA listed but failed to start: lay out for the CPU
        model = _load(path, "CPUExecutionProvider", layout)
    return model


def _load(path: str, want: str | None, layout: ParallelLayout) -> TerrainModel:
    """The cached session for ``path`` opened on the first provider that starts, or a new one."""
    path = os.path.abspath(path)
    check_model_file(path)  # a folder, a missing or an empty file, named before anything else is tried
    st = os.stat(path)
    key = path, st.st_mtime_ns, st.st_size, want, layout  # the file as it is now, and how it is run
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
    if cached is not None:  # no second parse of a large model
        return cached
    notes = []
    last_error: Exception | None = None
    for provider in candidate_providers(import_onnxruntime().get_available_providers(), want):
        try:
            sess = open_session(path, provider, layout.threads)
        except ContractError:
            raise
        except Exception as exc:  # provider libraries missing, driver too old, ...
            LOG.warning("Execution provider %s failed to start (%s); trying the next.", provider, exc)
            notes.append(f"{provider} failed to start: {exc}".splitlines()[0])
            last_error = exc
            continue
        active = sess.get_providers()[0]
        if active != provider:
            notes.append(f"{provider} was requested but onnxruntime fell back to {active}")
        reason = "requested" if want == active else ("best available" if not notes else "fallback")
        note = "; ".join([f"{active} ({reason})"] + notes)
        contract = contract_of_session(sess, path)
        input_name, fixed_batch = _check_io(sess, contract, path)
        model = TerrainModel(path, contract, sess, active, note, input_name, fixed_batch, layout)
        with _CACHE_LOCK:
            _CACHE[key] = model
        return model
    raise RuntimeError(f"no onnxruntime execution provider could start the model '{path}': {last_error}")


def physical_cores() -> int:
    """Physical cores this process may use (hyper-threads counted once), as onnxruntime's default counts them.

    Linux: the CPUs of the process's affinity mask, grouped by their (package, core) topology. Elsewhere
    psutil's physical count when psutil is there (QGIS's Windows and macOS builds carry it), else the logical
    count (Apple silicon has no SMT).
    """
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        try:
            import psutil

            return max(1, psutil.cpu_count(logical=False) or os.cpu_count() or 1)
        except ImportError:
            return max(1, os.cpu_count() or 1)
    cores = set()
    for cpu in cpus:
        topo = f"/sys/devices/system/cpu/cpu{cpu}/topology"
        try:
            with open(f"{topo}/physical_package_id", encoding="ascii") as pkg, \
                    open(f"{topo}/core_id", encoding="ascii") as core:
                cores.add((pkg.read().strip(), core.read().strip()))
        except OSError:
            cores.add(("cpu", str(cpu)))  # no topology (some containers): count the CPU itself
    return max(1, len(cores))


def parallel_layout(provider: str, cores: int) -> ParallelLayout:
    """Runs in flight and threads per run for a grid on ``provider`` with ``cores`` physical cores.

    CPU: up to :data:`MAX_WORKERS` runs at once, the cores shared out between them (see the module docstring).
    An accelerator works best on one large batch at a time: one run, default threads.
    """
    if provider != "CPUExecutionProvider":
        return ParallelLayout(1, 0)
    workers = max(1, min(cores, MAX_WORKERS))
    return ParallelLayout(workers, max(1, cores // workers))


def clear_cache() -> None:
    """Forget every cached session (a model was replaced, or tests want a clean slate)."""
    with _CACHE_LOCK:
        _CACHE.clear()

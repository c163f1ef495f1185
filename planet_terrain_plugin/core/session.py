"""One onnxruntime session per model file, on the best execution provider that actually starts.

Order: CUDA, then CoreML (Apple), then CPU. The user can force one with the ``PLANET_TERRAIN_PROVIDER``
environment variable or the plugin setting (passed as ``preferred``). A provider that is listed by onnxruntime
but fails to start (missing CUDA libraries are common) falls back to the next with a logged warning, and the
provider that really runs is reported, because "is my GPU used?" is the first question users ask.
Sessions are cached by (path, mtime, size, preference): a click reuses the session, a re-exported file does not.
"""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field

import numpy as np

from .contract import ContractError, ModelContract

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


@dataclass
class TerrainModel:
    """A loaded model: its file, contract, live session and the provider that runs it."""

    path: str
    contract: ModelContract
    session: object
    provider: str
    provider_note: str
    input_name: str = field(default="")
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """Run the network on a float32 (N, 3, S, S) batch; returns (N, C) logits."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        s = self.contract.input_size
        if batch.ndim != 4 or batch.shape[1:] != (3, s, s):
            raise ValueError(f"batch shape {batch.shape} does not match the model input (N, 3, {s}, {s})")
        with self._lock:  # one session serves the map tool and Processing; keep runs serial per session
            (out,) = self.session.run(None, {self.input_name: batch})
        return np.asarray(out)


_CACHE: dict[tuple, TerrainModel] = {}
_REEXPORT = "Re-export the model with `make export`, or pick a model made for this plugin."
_CACHE_LOCK = threading.Lock()


def _check_io(sess, contract: ModelContract, path: str) -> str:
    inputs, outputs = sess.get_inputs(), sess.get_outputs()
    if len(inputs) != 1 or len(outputs) != 1:
        raise ContractError(path, None, f"has {len(inputs)} inputs and {len(outputs)} outputs; expected 1 and 1.", _REEXPORT)
    shape = list(inputs[0].shape)
    s = contract.input_size
    if len(shape) != 4 or any(isinstance(d, int) and d != want for d, want in zip(shape[1:], (3, s, s))):
        raise ContractError(path, "input_size", f"says {s}, but the network input is {shape}; expected [N, 3, {s}, {s}].", _REEXPORT)
    out_shape = list(outputs[0].shape)
    if len(out_shape) != 2 or (isinstance(out_shape[1], int) and out_shape[1] != contract.num_classes):
        raise ContractError(path, "classes", f"lists {contract.num_classes} classes, but the network outputs {out_shape}.", _REEXPORT)
    return inputs[0].name


def load_model(path: str, preferred: str | None = None, intra_op_threads: int = 0) -> TerrainModel:
    """Load (or reuse) the model at ``path``. Raises ContractError for bad files, ImportError without onnxruntime."""
    from .contract import read_contract

    path = os.path.abspath(path)
    want = resolve_preference(preferred)
    if os.path.isfile(path):  # a cached session for this very file: no second parse of a large model
        st = os.stat(path)
        key = (path, st.st_mtime_ns, st.st_size, want, intra_op_threads)
        with _CACHE_LOCK:
            if key in _CACHE:
                return _CACHE[key]
    contract = read_contract(path)  # validates existence, ONNX-ness and the contract, naming the file
    st = os.stat(path)
    key = (path, st.st_mtime_ns, st.st_size, want, intra_op_threads)
    ort = import_onnxruntime()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if intra_op_threads:
        opts.intra_op_num_threads = intra_op_threads
    notes = []
    available = ort.get_available_providers()
    last_error: Exception | None = None
    for provider in candidate_providers(available, want):
        try:
            sess = ort.InferenceSession(path, opts, providers=[provider])
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
        model = TerrainModel(path, contract, sess, active, note, _check_io(sess, contract, path))
        with _CACHE_LOCK:
            _CACHE[key] = model
        return model
    raise RuntimeError(f"no onnxruntime execution provider could start the model '{path}': {last_error}")


def clear_cache() -> None:
    """Forget every cached session (a model was replaced, or tests want a clean slate)."""
    with _CACHE_LOCK:
        _CACHE.clear()

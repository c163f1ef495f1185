"""What the user reads about a run: one message-bar line per run, in plain words, the details in the log.

:class:`RunMessages` keeps a single Planet Terrain line in QGIS's message bar: each new message replaces the
previous one (a run's result never sits under a stale one from minutes ago), and its full text and details go
to the Planet Terrain tab of the log. The helpers turn the run's facts into short words: the execution provider
("CPU", not "CPUExecutionProvider"), the scale note and the time left from the speed measured so far.
"""
from __future__ import annotations

import math
from typing import Callable

from qgis.core import Qgis, QgsMessageLog
from qgis.gui import QgsMessageBarItem
from qgis.PyQt import sip

from ..core.calibrate import Reason
from ..qgis_io.fields import gsd_factor
from .task import LOG_TAG

TITLE = "Planet Terrain"
MESSAGE_SECONDS = 10
#: onnxruntime's execution providers in plain words (the panel's choices and the run messages).
PROVIDER_WORDS = {"CPUExecutionProvider": "CPU", "CUDAExecutionProvider": "NVIDIA GPU (CUDA)",
                  "CoreMLExecutionProvider": "Apple Neural Engine / GPU (CoreML)"}
#: A result whose cells are this many times coarser (or finer) than the model's range gets a warning.
GSD_WARN_FACTOR = 2.0


class RunMessages:
    """One Planet Terrain line in the message bar (``bar()`` gives it); each message replaces the last."""

    def __init__(self, bar: Callable[[], object]) -> None:
        self.bar = bar
        self._item: QgsMessageBarItem | None = None

    def show(self, text: str, level: int = Qgis.Info, details: str = "") -> None:
        """Replace the previous message with ``text``; ``text`` and ``details`` go to the log as well."""
        QgsMessageLog.logMessage(f"{text}\n{details}" if details else text, LOG_TAG, level)
        bar = self.bar()
        if not hasattr(bar, "pushItem"):  # a stand-in bar (tests' stub interface) knows only pushMessage
            bar.pushMessage(TITLE, text, level, MESSAGE_SECONDS)
            return
        previous, self._item = self._item, None
        if previous is not None and not sip.isdeleted(previous) and previous in bar.items():
            bar.popWidget(previous)
        self._item = QgsMessageBarItem(TITLE, text, level, MESSAGE_SECONDS)
        bar.pushItem(self._item)


def provider_words(provider: str) -> str:
    """'CPU', 'NVIDIA GPU (CUDA)', ... for an onnxruntime provider name (unknown names as they are)."""
    return PROVIDER_WORDS.get(provider, provider)


#: Each abstention reason in a few plain words (the legend's "why unknown" line); every ``Reason`` has one.
REASON_WORDS: dict[Reason, str] = {
    Reason.LOW_CONFIDENCE: "not confident enough",
    Reason.OUT_OF_DISTRIBUTION: "unlike the training images",
    Reason.OUT_OF_SCALE: "pixels too coarse",
    Reason.INVALID_OUTPUT: "model output not a number",
    Reason.NOT_AN_IMAGE: "not an image",
    Reason.UNKNOWN_BODY: "a body the model does not know",
}


def reason_words(reason: str) -> str:
    """:data:`REASON_WORDS` of a stored ``reason`` value (the value itself when it is no reason we know)."""
    try:
        return REASON_WORDS.get(Reason(reason), reason)
    except ValueError:
        return reason


def abstention_words(reason: str, confidence: float, threshold: float, scale_factor: float | None = None) -> str:
    """Why a decision is ``unknown``, in a few words, from its ``reason`` field (and ``scale_factor`` field)."""
    if reason == Reason.OUT_OF_DISTRIBUTION.value:
        return "the image is unlike the model's training images"
    if reason == Reason.INVALID_OUTPUT.value:
        return "the model's output was not a number (see the log)"
    if reason == Reason.OUT_OF_SCALE.value:
        how = format_factor(scale_factor) if scale_factor and math.isfinite(scale_factor) else "coarser"
        return f"the pixels are {how} than the model was trained on: use a finer image of the area"
    if reason in (Reason.NOT_AN_IMAGE.value, Reason.UNKNOWN_BODY.value):
        return reason_words(reason)
    return f"confidence {confidence:.2f} is below the threshold {threshold:.2f}"


def format_factor(factor: float) -> str:
    """'40x coarser' / '3.5x finer' for a :func:`qgis_io.fields.gsd_factor` ratio."""
    ratio, word = (factor, "coarser") if factor >= 1 else (1.0 / factor, "finer")
    return f"{ratio:.0f}x {word}" if ratio >= 10 else f"{ratio:.1f}x {word}"


def scale_note(gsd_m: float, gsd_range_m: tuple[float, float]) -> str:
    """'14x coarser than the model's 0.5–12 m/px' when ``gsd_m`` is far outside the model's range ('' when it is
    near or unknown)."""
    factor = gsd_factor(gsd_m, gsd_range_m)
    if not math.isfinite(factor) or max(factor, 1.0 / factor) < GSD_WARN_FACTOR:
        return ""
    lo, hi = gsd_range_m
    return f"{format_factor(factor)} than the model's {lo:g}–{hi:g} m/px"


def ground_words(metres: float) -> str:
    """'4.9 km' / '48 m' / '0.25 m': a ground length in the unit a user reads at a glance."""
    if metres >= 1000:
        return f"{metres / 1000:.3g} km"
    return f"{metres:.3g} m"


def cell_scale_words(cell_m: float, input_size: int, gsd_range_m: tuple[float, float]) -> str:
    """A grid cell in metres on the ground and the ground size of one model pixel when it is read (the model
    sees every cell at ``input_size`` pixels), with the scale note when that is far from the model's range."""
    per_pixel = cell_m / input_size
    text = f"{ground_words(cell_m)} cells, read at {ground_words(per_pixel)} per model pixel"
    note = scale_note(per_pixel, gsd_range_m)
    return f"{text}: {note}" if note else f"{text} (the model's scale)"


def duration_words(seconds: float) -> str:
    """'81 s', '59 min', '10.0 h'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def eta_text(fraction_done: float, elapsed_s: float) -> str:
    """'about 3 min left' from the speed measured so far ('' before anything is done)."""
    if fraction_done <= 0 or elapsed_s <= 0:
        return ""
    return f"about {duration_words(elapsed_s * (1.0 - min(fraction_done, 1.0)) / fraction_done)} left"

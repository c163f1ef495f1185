"""int8 (static, QDQ, per-channel) and fp16 variants of the fp32 export.

int8 is calibrated on training-split images through the plugin's preprocessing (never on test images), so its
activation ranges are those the plugin will feed. Percentile calibration rather than MinMax, because it changes
fewer of fp32's decisions at equal macro-F1 (model card, "Export, parity and variants"). fp16 keeps float32
inputs and outputs (casts inside), so the plugin feeds every variant the same tensor.
"""
from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx

if TYPE_CHECKING:  # a type only: importing it loads torch, which `make bench` must not measure
    from training.rundata import RunData


class _Reader:
    """onnxruntime CalibrationDataReader over preprocessed training images, in small batches."""

    def __init__(self, tensors: np.ndarray, input_name: str, batch: int = 16) -> None:
        # equal-sized batches only: the histogram calibrators stack them (a short last batch breaks that)
        usable = len(tensors) // batch * batch or len(tensors)
        self.batches = iter([{input_name: tensors[i:i + batch]} for i in range(0, usable, batch)])

    def get_next(self):
        return next(self.batches, None)


def calibration_tensors(data: RunData, n: int) -> np.ndarray:
    """``n`` training images spread evenly over the known classes and the "other" pool."""
    train = sorted(data.splits["train"], key=lambda r: r.path)
    by_label: dict[int, list] = {}
    for r in train:
        by_label.setdefault(r.label, []).append(r)
    per = max(1, n // max(1, len(by_label)))
    chosen = []
    for label in sorted(by_label):
        recs = by_label[label]
        chosen += recs[::max(1, len(recs) // per)][:per]
    return np.stack([data.cache.eval_tensor(r) for r in chosen]).astype(np.float32)


def ood_nodes(model: onnx.ModelProto) -> list[str]:
    """The nodes of the in-graph out-of-distribution score (``export.ood_graph``): kept in float32 by
    :func:`to_int8`, since its threshold was fitted on float features."""
    from .ood_graph import PREFIX

    return [n.name for n in model.graph.node if n.name.startswith(PREFIX)]


def to_int8(fp32_path: str | Path, out_path: str | Path, data: RunData, n_calib: int = 256,
            exclude: list[str] | None = None) -> Path:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        name = onnx.load(str(pre), load_external_data=False).graph.input[0].name
        quantize_static(str(pre), str(out_path), _Reader(calibration_tensors(data, n_calib), name),
                        quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.Percentile,
                        nodes_to_exclude=list(exclude or ()))
    return Path(out_path)


def to_fp16(fp32_path: str | Path, out_path: str | Path) -> Path:
    from onnxconverter_common import float16

    with warnings.catch_warnings():  # one warning per tiny weight clamped to fp16's range: expected, noisy
        warnings.simplefilter("ignore", UserWarning)
        model = float16.convert_float_to_float16(onnx.load(str(fp32_path)), keep_io_types=True)
    onnx.save(model, str(out_path))
    return Path(out_path)


def upcast_fp16(src: Path, dst: Path) -> Path:
    """Write ``src`` with every float16 initializer and cast turned back into float32 (metadata kept)."""
    from onnx import TensorProto, numpy_helper

    if dst.is_file() and dst.stat().st_mtime >= src.stat().st_mtime:
        return dst
    model = onnx.load(str(src))
    for init in model.graph.initializer:
        if init.data_type == TensorProto.FLOAT16:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float32), init.name))
    for node in model.graph.node:
        if node.op_type == "Cast":
            for attr in node.attribute:
                if attr.name == "to" and attr.i == TensorProto.FLOAT16:
                    attr.i = TensorProto.FLOAT
    for value in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        if value.type.tensor_type.elem_type == TensorProto.FLOAT16:
            value.type.tensor_type.elem_type = TensorProto.FLOAT
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))
    return dst

"""Export of a trained run to ONNX with its contract, parity check, and int8/fp16 variants."""

"""Deployment: what leaves the engine as a file that runs elsewhere.

`onnx_export` (with `onnx_naming`, `onnx_checks`, `bn_folding`), `quantize` /
`quantized_export` / `quantised_io` / `sensitivity` (int8 and w8a16 with their
calibration and fallback), `inference` (tiled inference on any image size), `modelfile`
(the saved network with its architecture) and `device_check` (accuracy on a backend's
device). Imports the contracts, `hwnas.runs.io` / `hwnas.runs.compute`, and of the
tables only the attribution's names and the table builder's backend setup.
"""

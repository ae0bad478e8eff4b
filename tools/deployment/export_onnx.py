"""Export a FaPN model to ONNX with standard operators only.

    python tools/deployment/export_onnx.py CONFIG OUT.onnx --shape H W
        [--checkpoint PATH] [--part auto|backbone-neck|whole]
        [--preprocess] [--opset 17] [--batch 1]
        [--exporter torchscript|dynamo] [--no-verify] [--cfg-options ...]

Default input: ``input``, the normalised float32 tensor (N, 3, H, W) the
model's data preprocessor makes.  ``--preprocess``: ``image``, a uint8
image (N, H, W, 3) in the pipeline's channel order (BGR, as cv2.imread),
with the data preprocessor (BGR -> RGB, mean/std, padding to the size
divisor) inside the graph.  The file is checked in onnxruntime against
PyTorch (exit status 1 above ``--atol``).  Details and an onnxruntime
example: docs/user_guides/deployment.md; the library is
``mmfapn.deployment.onnx_export``.
"""
import sys

from mmfapn.deployment.onnx_export import main

if __name__ == '__main__':
    sys.exit(main())

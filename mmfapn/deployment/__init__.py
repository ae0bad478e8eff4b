# ONNX export with standard operators only (tools/deployment/export_onnx.py)
# and the data preprocessor as an exportable module.
from .preprocess import ImagePreprocessor, padded_shape, preprocess_settings

__all__ = ['ImagePreprocessor', 'padded_shape', 'preprocess_settings']

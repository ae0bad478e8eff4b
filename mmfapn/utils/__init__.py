"""Utilities that are not models: checkpoint conversion from the released
detectron2 FaPN models (:mod:`mmfapn.utils.d2_convert`, MaskFormer rules in
:mod:`mmfapn.utils.d2_maskformer`), the machine and peak memory of a
measurement (:mod:`mmfapn.utils.env`) and the model zoo page
(:mod:`mmfapn.utils.model_zoo`).

Not imported by ``import mmfapn``: the converter is only needed by
``tools/model_converters/d2_fapn_to_mmdet.py`` and its tests.
"""
from .d2_convert import (D2ConversionError, D2UnsupportedError,
                         ConversionReport, convert_d2_checkpoint,
                         convert_d2_state_dict, detect_d2_model,
                         load_d2_checkpoint)

__all__ = [
    'D2ConversionError', 'D2UnsupportedError', 'ConversionReport',
    'convert_d2_checkpoint', 'convert_d2_state_dict', 'detect_d2_model',
    'load_d2_checkpoint'
]

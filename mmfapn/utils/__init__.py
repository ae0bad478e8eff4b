"""Utilities that are not models: checkpoint conversion from the released
detectron2 FaPN models (:mod:`mmfapn.utils.d2_convert`, MaskFormer rules in
:mod:`mmfapn.utils.d2_maskformer`) and synthetic detectron2-format state
dicts to test it with (:mod:`mmfapn.utils.d2_synthetic`).

Not imported by ``import mmfapn``: the converter is only needed by
``tools/model_converters/d2_fapn_to_mmdet.py`` and its tests.
"""
from .d2_convert import (D2ConversionError, D2UnsupportedError,
                         ConversionReport, convert_d2_checkpoint,
                         convert_d2_state_dict, detect_d2_model,
                         fapn_neck_to_d2, load_d2_checkpoint)
from .d2_synthetic import d2_fapn_state_dict, d2_state_dict_from_key_list

__all__ = [
    'D2ConversionError', 'D2UnsupportedError', 'ConversionReport',
    'convert_d2_checkpoint', 'convert_d2_state_dict', 'detect_d2_model',
    'fapn_neck_to_d2', 'load_d2_checkpoint', 'd2_fapn_state_dict',
    'd2_state_dict_from_key_list'
]

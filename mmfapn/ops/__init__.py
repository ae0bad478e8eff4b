from .guided_deform_conv import GuidedModulatedDeformConv2d
from .modulated_deform_conv import (check_deform_inputs, mmcv_ops_available,
                                    modulated_deform_conv2d)

__all__ = [
    'modulated_deform_conv2d', 'check_deform_inputs', 'mmcv_ops_available',
    'GuidedModulatedDeformConv2d'
]

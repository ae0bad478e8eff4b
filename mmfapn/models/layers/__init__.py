from .align_cm import AlignCM
from .align_fa import AlignFA
from .base_aligner import BaseAligner
from .build_aligner import ALIGNERS, build_aligner, get_aligner
from .deconv_upsample import DeconvFusion, DeconvUpsample
from .fam import FeatureAlignAfterFusion, FeatureAlignModule
from .flow_head import FlowHead
from .flow_warp import flow_warp
from .fsm import FeatureSelectionModule
from .sum_fusion import SumFusion

__all__ = [
    'FeatureSelectionModule', 'FeatureAlignModule', 'FeatureAlignAfterFusion',
    'AlignFA', 'AlignCM', 'DeconvUpsample', 'DeconvFusion', 'SumFusion',
    'BaseAligner', 'ALIGNERS', 'build_aligner', 'get_aligner', 'FlowHead',
    'flow_warp'
]

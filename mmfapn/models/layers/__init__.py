from .align_cm import AlignCM
from .align_fa import AlignFA
from .deconv_upsample import DeconvUpsample
from .fam import FeatureAlignModule
from .flow_head import FlowHead
from .flow_warp import flow_warp
from .fsm import FeatureSelectionModule

__all__ = [
    'FeatureSelectionModule', 'FeatureAlignModule', 'AlignFA', 'AlignCM',
    'DeconvUpsample', 'FlowHead', 'flow_warp'
]

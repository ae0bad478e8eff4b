from . import decode_heads, pixel_decoders  # noqa: F401  (registration)
from .layers import FeatureAlignModule, FeatureSelectionModule
from .necks import FaPN

__all__ = ['FeatureSelectionModule', 'FeatureAlignModule', 'FaPN']

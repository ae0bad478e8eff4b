from .fam import FeatureAlignModule
from .fsm import FeatureSelectionModule

__all__ = ['FeatureSelectionModule', 'FeatureAlignModule']

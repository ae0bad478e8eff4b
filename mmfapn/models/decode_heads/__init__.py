# decode heads (mmseg); each module registers itself on import
from importlib.util import find_spec

if find_spec('mmseg') is not None:  # absent in an mmdet-only install
    from .fapn_head import FaPNHead  # noqa: F401
    from .uper_fapn_head import UPerFaPNHead  # noqa: F401

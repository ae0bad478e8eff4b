# decode heads (mmseg); each module registers itself on import
from importlib.util import find_spec

if find_spec('mmseg') is not None:  # absent in an mmdet-only install
    try:
        from .realtime_fapn_head import (FaPNHead,  # noqa: F401
                                         RealtimeFaPNHead)
        from .uper_fapn_head import UPerFaPNHead  # noqa: F401
    except ImportError as err:
        # mmseg.models imports mmcv.ops, which needs mmcv's compiled ops.
        # Without them only the heads are lost: FSM, FAM and the FaPN neck
        # run on the PyTorch deformable conv (mmfapn.ops).
        from mmfapn.ops import mmcv_ops_available
        if mmcv_ops_available():
            raise
        import warnings
        warnings.warn('mmfapn: mmseg decode heads unavailable because '
                      f"mmcv's compiled ops are missing ({err})")

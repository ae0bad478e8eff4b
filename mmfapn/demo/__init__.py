"""The FPN-vs-FaPN demo (``make demo``) and the pictures behind the
analysis tools (``tools/analysis/vis_alignment.py``,
``tools/analysis/compare_predictions.py``).

Not imported by ``import mmfapn``: it needs mmseg (and mmdet for detection
models) and draws with OpenCV.
"""
from .alignment import (AlignmentRecord, AlignmentRecorder,
                        displacement_stats, find_feature_align_modules,
                        mean_displacement, reduce_channels)
from .pairing import PairingHook
from .progress import DemoProgress, DemoProgressHook
from .statistics import Interval, mean_std, t_interval, verdict

__all__ = [
    'AlignmentRecord', 'AlignmentRecorder', 'find_feature_align_modules',
    'mean_displacement', 'displacement_stats', 'reduce_channels',
    'DemoProgress', 'DemoProgressHook', 'PairingHook', 'Interval',
    'mean_std', 't_interval', 'verdict'
]

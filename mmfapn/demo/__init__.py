"""The FPN-vs-FaPN demo (``make demo``): paired training runs, statistics
and the report.  Its figures come from :mod:`mmfapn.visualization`, its
models are loaded by :mod:`mmfapn.apis`.

Not imported by ``import mmfapn``: it needs mmseg and draws with OpenCV.
"""
from .pairing import PairingHook
from .progress import DemoProgress, DemoProgressHook
from .statistics import Interval, mean_std, t_interval, verdict

__all__ = [
    'DemoProgress', 'DemoProgressHook', 'PairingHook', 'Interval',
    'mean_std', 't_interval', 'verdict'
]

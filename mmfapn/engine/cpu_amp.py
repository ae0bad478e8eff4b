"""Mixed precision on CPU: bfloat16 autocast for the training step.

mmengine's ``AmpOptimWrapper`` refuses to run without a GPU (it exists for
float16 with loss scaling on CUDA).  On CPU, bfloat16 autocast needs no
loss scaling (its exponent range is float32's), so the wrapper only has to
run the forward and the loss in an autocast region.  mmcv's CPU ``nms``
and ``roi_align`` have no bfloat16 path, so they run in float32 there
(:func:`~mmfapn.engine.mmcv_cpu_autocast.mmcv_ops_in_float32`), which
lets stock two-stage detectors (Mask R-CNN, PointRend) train this way.
"""
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS

from .mmcv_cpu_autocast import mmcv_ops_in_float32


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose training forward runs under
    ``torch.autocast('cpu', dtype=torch.bfloat16)``.

    ``tools/train.py --amp`` picks it when no CUDA device exists (and
    mmengine's ``AmpOptimWrapper`` otherwise).  In a config::

        optim_wrapper = dict(type='CPUAmpOptimWrapper', optimizer=...)

    Parameters, gradients and the optimizer step stay float32; validation
    and testing run in float32, as with ``AmpOptimWrapper``.
    """

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        with super().optim_context(model), torch.autocast(
                'cpu', dtype=torch.bfloat16), mmcv_ops_in_float32():
            yield

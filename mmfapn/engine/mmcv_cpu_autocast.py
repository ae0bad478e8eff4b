"""mmcv's CPU ``nms`` and ``roi_align`` inside a CPU autocast region.

Under ``torch.autocast('cpu', dtype=torch.bfloat16)`` stock two-stage
detectors reach two mmcv 2.1.0 CPU kernels that cannot take what autocast
gives them: ``nms`` refuses boxes and scores of different dtypes (mmdet's
RPN passes bfloat16 boxes with float32 scores) and ``roi_align`` has no
bfloat16 kernel.  Autocast's own answer for ops without a low-precision
kernel is to run them in float32; :func:`mmcv_ops_in_float32` does the same
for these two, for CPU tensors while CPU autocast is on, and leaves every
other call (CUDA, float32, autocast off) untouched.  ``roi_align`` returns
its result in the input's dtype, as mmcv's CUDA kernel does for float16,
because mmdet's RoI extractor writes it into a tensor of the features'
dtype.  ``nms`` returns float32 ``dets``, what type promotion gives for
mixed boxes and scores.

:class:`~mmfapn.engine.cpu_amp.CPUAmpOptimWrapper` enters this context
around the training forward; scripts that call ``torch.autocast`` on CPU
themselves can enter it too.
"""
import sys
from contextlib import contextmanager
from typing import Iterator

import torch


def _cpu_autocast_on(*tensors) -> bool:
    return torch.is_autocast_enabled('cpu') and all(
        isinstance(t, torch.Tensor) and t.device.type == 'cpu'
        for t in tensors)


def _wrap_nms(real):

    def nms(boxes, scores, *args, **kwargs):
        if _cpu_autocast_on(boxes, scores) and (
                boxes.dtype != torch.float32 or scores.dtype != torch.float32):
            boxes, scores = boxes.float(), scores.float()
        return real(boxes, scores, *args, **kwargs)

    nms._mmfapn_wraps = real
    return nms


def _wrap_roi_align(real):

    def roi_align(input, rois, *args, **kwargs):
        if _cpu_autocast_on(input, rois) and input.dtype != torch.float32:
            with torch.autocast('cpu', enabled=False):
                out = real(input.float(), rois.float(), *args, **kwargs)
            return out.to(input.dtype)
        return real(input, rois, *args, **kwargs)

    roi_align._mmfapn_wraps = real
    return roi_align


# (module, attribute, wrapper factory): the module-level names that mmcv's
# own callers look up at call time (``batched_nms`` evaluates ``nms`` in
# mmcv.ops.nms, ``RoIAlign.forward`` calls ``roi_align`` in
# mmcv.ops.roi_align).
_TARGETS = (('mmcv.ops.nms', 'nms', _wrap_nms),
            ('mmcv.ops.roi_align', 'roi_align', _wrap_roi_align))


@contextmanager
def mmcv_ops_in_float32() -> Iterator[None]:
    """Within this context, mmcv's CPU ``nms`` and ``roi_align`` run in
    float32 when CPU autocast is enabled (see the module docstring).

    The original functions are restored on exit, also after an error;
    nested use is harmless (an already wrapped function is not wrapped
    again).

    Example:
        >>> import torch
        >>> from mmcv.ops import RoIAlign
        >>> layer = RoIAlign(output_size=2, spatial_scale=1.0)
        >>> feats = torch.rand(1, 3, 8, 8).bfloat16()
        >>> rois = torch.tensor([[0., 0., 0., 4., 4.]])
        >>> with torch.autocast('cpu', dtype=torch.bfloat16), \\
        ...         mmcv_ops_in_float32():
        ...     out = layer(feats, rois)
        >>> out.dtype, tuple(out.shape)
        (torch.bfloat16, (1, 3, 2, 2))
    """
    import mmcv.ops  # noqa: F401  (imports the submodules patched below)
    saved = []
    try:
        for module_name, attr, wrap in _TARGETS:
            module = sys.modules[module_name]
            real = getattr(module, attr)
            if not hasattr(real, '_mmfapn_wraps'):
                saved.append((module, attr, real))
                setattr(module, attr, wrap(real))
        yield
    finally:
        for module, attr, real in reversed(saved):
            setattr(module, attr, real)

"""Functional modulated deformable convolution (DCNv2) used by every mmfapn
aligner.

All FaPN modules call :func:`modulated_deform_conv2d` rather than an
implementation directly, so the implementation is a config choice
(``dcn_impl``) and inputs are validated once, before any kernel runs:
mmcv's CPU kernel given an offset of the wrong spatial size writes out of
bounds and aborts the process instead of raising.

Offset layout (mmcv = official DCNv2 = torchvision): for deformable group
``g`` and kernel tap ``k`` (row-major over the kernel window), channel
``2 * (g * kh * kw + k)`` holds the y (row) offset and the next channel the
x (column) offset; the mask has one channel per group and tap, group-major.

Implementations (``impl``):

* ``'mmcv'``: mmcv's compiled op (the reference on CUDA).
* ``'torch'``: :func:`mmfapn.ops.mdcn_torch.modulated_deform_conv2d_torch`,
  PyTorch operators only (``grid_sample`` + matmul): fast on CPU, memory
  bounded, exportable to ONNX with standard operators.
* ``'auto'`` (default): mmcv's op on CUDA when mmcv's compiled ops are
  present, the PyTorch path otherwise (CPU, other devices, no ``mmcv._ext``).
  The environment variable ``MMFAPN_DCN_IMPL`` (``mmcv`` or ``torch``)
  overrides what ``'auto'`` picks, for A/B runs of a whole model without
  editing its config; an explicit ``impl='mmcv'``/``'torch'`` always wins.

Both run as the custom op ``torch.ops.mmfapn.modulated_deform_conv2d``
(:mod:`mmfapn.ops.mdcn_library`): ``torch.compile`` keeps it as one node,
without a graph break.

Mixed precision follows autocast's rule for convolutions: inside
``torch.autocast`` the input, offset, mask, weight and bias are cast to the
autocast dtype (:func:`autocast_inputs`; mmcv's own CUDA op casts the same
way) and the output has that dtype.  Where the sampling needs it the kernel
computes internally in float32: always for the PyTorch path, and for
mmcv's except float16 on CUDA (see :mod:`mmfapn.ops.mdcn_library`).
"""
import functools
import os
from typing import List, Optional, Tuple, Union

import torch
from torch import Tensor

from .mdcn_library import mdcn_apply

IMPLS = ('auto', 'mmcv', 'torch')
ENV_IMPL = 'MMFAPN_DCN_IMPL'

_IntPair = Union[int, Tuple[int, int]]


def _pair(value: _IntPair, name: str) -> Tuple[int, int]:
    if isinstance(value, int):
        pair = (value, value)
    else:
        pair = tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) for v in pair):
        raise TypeError(
            f'{name} must be an int or a pair of ints, got {value!r}')
    return pair


@functools.lru_cache(maxsize=None)
def mmcv_ops_available() -> bool:
    """Whether mmcv's compiled ops (``mmcv._ext``) can be imported (cached:
    a failed import is not retried on every call)."""
    try:
        import mmcv._ext  # noqa: F401
    except Exception:  # ImportError, or a broken shared object
        return False
    return True


def check_impl(impl: str, name: str = 'impl') -> str:
    """Return ``impl`` if it is one of :data:`IMPLS`, else raise."""
    if impl not in IMPLS:
        raise ValueError(f'modulated_deform_conv2d: {name} must be one of '
                         f'{IMPLS}, got {impl!r}')
    return impl


def resolve_impl(impl: str, device: torch.device) -> str:
    """The concrete implementation (``'mmcv'`` or ``'torch'``) that ``impl``
    selects for a tensor on ``device`` (see the module docstring)."""
    check_impl(impl)
    if impl == 'auto':
        env = os.environ.get(ENV_IMPL, '').strip().lower()
        if env:
            impl = check_impl(env, f'environment variable {ENV_IMPL}')
    if impl == 'auto':
        impl = 'mmcv' if (torch.device(device).type == 'cuda'
                          and mmcv_ops_available()) else 'torch'
    return impl


def deform_output_size(in_size: Tuple[int, int], kernel: Tuple[int, int],
                       stride: Tuple[int, int], padding: Tuple[int, int],
                       dilation: Tuple[int, int]) -> Tuple[int, int]:
    """Output (H, W) of a convolution with the given geometry."""
    return tuple(
        (i + 2 * p - d * (k - 1) - 1) // s + 1
        for i, k, s, p, d in zip(in_size, kernel, stride, padding, dilation))


def check_deform_inputs(input: Tensor, offset: Tensor, mask: Tensor,
                        weight: Tensor, bias: Optional[Tensor],
                        stride: Tuple[int, int], padding: Tuple[int, int],
                        dilation: Tuple[int, int],
                        deform_groups: int) -> None:
    """Raise a ``ValueError``/``TypeError`` naming the first bad argument."""
    for name, t in (('input', input), ('offset', offset), ('mask', mask),
                    ('weight', weight)):
        if not isinstance(t, Tensor):
            raise TypeError(f'modulated_deform_conv2d: {name} must be a '
                            f'Tensor, got {type(t).__name__}')
        if t.dim() != 4:
            raise ValueError(f'modulated_deform_conv2d: {name} must be 4-D, '
                             f'got shape {tuple(t.shape)}')
    if not isinstance(deform_groups, int) or deform_groups < 1:
        raise ValueError('modulated_deform_conv2d: deform_groups must be a '
                         f'positive int, got {deform_groups!r}')
    if any(s < 1 for s in stride) or any(d < 1 for d in dilation) or any(
            p < 0 for p in padding):
        raise ValueError('modulated_deform_conv2d: need stride >= 1, '
                         f'dilation >= 1, padding >= 0, got stride={stride}, '
                         f'padding={padding}, dilation={dilation}')
    if not input.is_floating_point():
        raise TypeError('modulated_deform_conv2d: input must be a floating '
                        f'point tensor, got dtype {input.dtype}')
    n, c, h, w = input.shape
    out_c, in_c_per_group, kh, kw = weight.shape
    if c % deform_groups:
        raise ValueError(f'modulated_deform_conv2d: input channels ({c}) are '
                         f'not divisible by deform_groups={deform_groups}')
    if in_c_per_group == 0 or c % in_c_per_group:
        raise ValueError(f'modulated_deform_conv2d: input has {c} channels '
                         f'but weight expects {in_c_per_group} per group '
                         f'(weight shape {tuple(weight.shape)})')
    out_h, out_w = deform_output_size((h, w), (kh, kw), stride, padding,
                                      dilation)
    if out_h < 1 or out_w < 1:
        raise ValueError(f'modulated_deform_conv2d: input {h}x{w} is too '
                         f'small for kernel {kh}x{kw} with padding '
                         f'{padding}, dilation {dilation}')
    taps = deform_groups * kh * kw
    expected = {
        'offset': (n, 2 * taps, out_h, out_w),
        'mask': (n, taps, out_h, out_w)
    }
    for name, t in (('offset', offset), ('mask', mask)):
        if tuple(t.shape) != expected[name]:
            raise ValueError(
                f'modulated_deform_conv2d: {name} must have shape '
                f'{expected[name]} (batch, {"2*" if name == "offset" else ""}'
                f'deform_groups*kh*kw, out_h, out_w), got {tuple(t.shape)}')
    if bias is not None and tuple(bias.shape) != (out_c, ):
        raise ValueError(f'modulated_deform_conv2d: bias must have shape '
                         f'({out_c},), got {tuple(bias.shape)}')
    tensors = [('input', input), ('offset', offset), ('mask', mask),
               ('weight', weight)] + ([('bias', bias)] if bias is not None
                                      else [])
    for name, t in tensors[1:]:
        if t.dtype != input.dtype:
            raise TypeError(f'modulated_deform_conv2d: {name} dtype '
                            f'{t.dtype} differs from input dtype '
                            f'{input.dtype}')
        if t.device != input.device:
            raise ValueError(f'modulated_deform_conv2d: {name} is on '
                             f'{t.device} but input is on {input.device}')


def autocast_inputs(*tensors: Optional[Tensor]) -> List[Optional[Tensor]]:
    """Autocast's rule for convolutions: inside an enabled
    ``torch.autocast`` region of the input's device, every floating-point
    tensor is cast to the region's dtype (float16/bfloat16), the parameters
    included; outside one, the tensors are returned unchanged (mixed dtypes
    are then an error of :func:`check_deform_inputs`)."""
    x = tensors[0]
    if not isinstance(x, Tensor):
        return list(tensors)
    device_type = x.device.type
    if not torch.is_autocast_enabled(device_type):
        return list(tensors)
    dtype = torch.get_autocast_dtype(device_type)
    return [
        t.to(dtype) if isinstance(t, Tensor) and t.is_floating_point() else t
        for t in tensors
    ]


def modulated_deform_conv2d(input: Tensor,
                            offset: Tensor,
                            mask: Tensor,
                            weight: Tensor,
                            bias: Optional[Tensor] = None,
                            stride: _IntPair = 1,
                            padding: _IntPair = 0,
                            dilation: _IntPair = 1,
                            deform_groups: int = 1,
                            impl: str = 'auto') -> Tensor:
    """Modulated deformable convolution (DCNv2), ``groups=1``.

    Args:
        input (Tensor): (N, C_in, H, W).
        offset (Tensor): (N, 2 * deform_groups * kh * kw, H_out, W_out),
            (dy, dx) interleaved per tap, group-major (see module doc).
        mask (Tensor): (N, deform_groups * kh * kw, H_out, W_out), already
            passed through a sigmoid.
        weight (Tensor): (C_out, C_in, kh, kw).
        bias (Tensor, optional): (C_out,).
        stride, padding, dilation (int | tuple[int, int]): conv geometry.
        deform_groups (int): number of offset groups; divides C_in.
        impl (str): ``'auto'``, ``'mmcv'`` or ``'torch'`` (see the module
            docstring).

    Returns:
        Tensor: (N, C_out, H_out, W_out).
    """
    check_impl(impl)
    stride = _pair(stride, 'stride')
    padding = _pair(padding, 'padding')
    dilation = _pair(dilation, 'dilation')
    input, offset, mask, weight, bias = autocast_inputs(
        input, offset, mask, weight, bias)
    check_deform_inputs(input, offset, mask, weight, bias, stride, padding,
                        dilation, deform_groups)
    impl = resolve_impl(impl, input.device)
    if impl == 'mmcv' and not mmcv_ops_available():
        raise RuntimeError(
            "modulated_deform_conv2d(impl='mmcv'): mmcv's compiled ops are "
            "missing (mmcv._ext cannot be imported); rebuild mmcv with "
            "'make setup'")
    return mdcn_apply(input, offset, mask, weight, bias, stride, padding,
                      dilation, deform_groups, impl)

"""mmcv's compiled DCNv2 kernels (``mmcv._ext``), called directly.

mmcv wraps them in an ``autograd.Function`` that ``torch.compile`` cannot
trace into; :mod:`mmfapn.ops.mdcn_library` wraps these two calls in a
custom op instead.  Inputs are contiguous, same-dtype, already validated;
``geom`` is ``(kernel, stride, padding, dilation, deform_groups)``.
"""
from typing import List, Optional

import torch
from torch import Tensor


def _ext():
    import mmcv._ext as ext  # only when mmcv's ops are used
    return ext


def _geom_kwargs(weight: Tensor, geom) -> dict:
    _, stride, padding, dilation, dg = geom
    return dict(
        kernel_h=weight.size(2),
        kernel_w=weight.size(3),
        stride_h=stride[0],
        stride_w=stride[1],
        pad_h=padding[0],
        pad_w=padding[1],
        dilation_h=dilation[0],
        dilation_w=dilation[1],
        group=1,
        deformable_group=dg)


def mdcn_forward_mmcv(input: Tensor, offset: Tensor, mask: Tensor,
                      weight: Tensor, bias: Optional[Tensor],
                      geom) -> Tensor:
    """mmcv's ``modulated_deform_conv_forward``."""
    with_bias = bias is not None
    bias = bias.contiguous() if with_bias else input.new_empty(0)
    out = input.new_empty(input.shape[0], weight.shape[0], *mask.shape[-2:])
    _ext().modulated_deform_conv_forward(
        input, weight, bias, input.new_empty(0), offset, mask, out,
        input.new_empty(0), with_bias=with_bias, **_geom_kwargs(weight, geom))
    return out


def mdcn_backward_mmcv(grad_out: Tensor, input: Tensor, offset: Tensor,
                       mask: Tensor, weight: Tensor, has_bias: bool,
                       geom) -> List[Optional[Tensor]]:
    """mmcv's ``modulated_deform_conv_backward``: gradients of input,
    offset, mask, weight and bias (None without bias)."""
    bias = input.new_zeros(weight.shape[0]) if has_bias else \
        input.new_empty(0)
    grads = [torch.zeros_like(t) for t in (input, offset, mask, weight, bias)]
    grad_x, grad_off, grad_mask, grad_w, grad_b = grads
    _ext().modulated_deform_conv_backward(
        input, weight, bias, input.new_empty(0), offset, mask,
        input.new_empty(0), grad_x, grad_w, grad_b, grad_off, grad_mask,
        grad_out, with_bias=has_bias, **_geom_kwargs(weight, geom))
    return [grad_x, grad_off, grad_mask, grad_w, grad_b if has_bias else None]

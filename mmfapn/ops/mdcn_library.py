"""The deformable conv as a ``torch.library`` custom op, for both kernels.

``torch.ops.mmfapn.modulated_deform_conv2d`` runs the PyTorch kernel
(:mod:`mmfapn.ops.mdcn_torch`) or mmcv's compiled one (``impl``); its
backward is a second op, ``modulated_deform_conv2d_backward``.  Why a custom
op: ``torch.compile`` keeps it as one opaque node with a fake (shape-only)
implementation and an autograd formula, so a compiled FaPN has no graph
break at the deformable conv, mmcv's pybind kernels included, and inductor
does not generate its own code for the sampling (an atomic scatter-add
backward, much slower than the eager kernel on CPU: docs/speed.md).  Eager
mode runs the same op, so compiled and eager execute the same kernels.

Half precision.  The op keeps the dtype of its (same-dtype) inputs and
computes:

* ``impl='torch'``: float16 and bfloat16 in float32 (the sampling
  positions, normalised to [-1, 1] in a bfloat16 grid, would be off by up
  to W / 512 pixels), output cast back;
* ``impl='mmcv'``: float16 natively on CUDA (mmcv's CUDA kernel has a
  half instantiation), every other low-precision case in float32.

Autocast does not reach into the op (a custom op has no autocast kernel,
and the kernels run with autocast disabled); the caller,
:func:`mmfapn.ops.modulated_deform_conv2d`, applies autocast's rule for
convolutions first.
"""
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from . import mdcn_torch
from .mdcn_mmcv import mdcn_backward_mmcv, mdcn_forward_mmcv

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def compute_dtype(impl: str, x: Tensor) -> torch.dtype:
    """The dtype the kernel ``impl`` computes in for inputs like ``x``."""
    if x.dtype not in _LOW_PRECISION:
        return x.dtype
    if impl == 'mmcv' and x.is_cuda and x.dtype == torch.float16:
        return x.dtype
    return torch.float32


def _output_shape(input: Tensor, weight: Tensor, mask: Tensor):
    return (input.shape[0], weight.shape[0], mask.shape[2], mask.shape[3])


def _geom(weight: Tensor, stride, padding, dilation, deform_groups: int):
    return ((weight.shape[2], weight.shape[3]), tuple(stride), tuple(padding),
            tuple(dilation), deform_groups)


def _no_autocast(x: Tensor):
    return torch.autocast(x.device.type, enabled=False)


@torch.library.custom_op('mmfapn::modulated_deform_conv2d', mutates_args=())
def _mdcn_op(input: Tensor, offset: Tensor, mask: Tensor, weight: Tensor,
             bias: Optional[Tensor], stride: List[int], padding: List[int],
             dilation: List[int], deform_groups: int, impl: str,
             chunk_numel: int) -> Tensor:
    dtype = compute_dtype(impl, input)
    args = [t.to(dtype).contiguous() for t in (input, offset, mask, weight)]
    b = None if bias is None else bias.to(dtype)
    geom = _geom(weight, stride, padding, dilation, deform_groups)
    with _no_autocast(input):
        if impl == 'mmcv':
            out = mdcn_forward_mmcv(*args, b, geom)
        else:
            out = mdcn_torch._forward(*args, b, geom, tuple(mask.shape[-2:]),
                                      chunk_numel)
    return out.to(input.dtype)


@_mdcn_op.register_fake
def _(input, offset, mask, weight, bias, stride, padding, dilation,
      deform_groups, impl, chunk_numel):
    return input.new_empty(_output_shape(input, weight, mask))


@torch.library.custom_op(
    'mmfapn::modulated_deform_conv2d_backward', mutates_args=())
def _mdcn_backward_op(grad_out: Tensor, input: Tensor, offset: Tensor,
                      mask: Tensor, weight: Tensor, has_bias: bool,
                      stride: List[int], padding: List[int],
                      dilation: List[int], deform_groups: int, impl: str,
                      chunk_numel: int, needs: List[bool]) -> List[Tensor]:
    """Gradients (input, offset, mask, weight, bias); an empty tensor for
    each one not in ``needs`` (a custom op returns no None)."""
    dtype = compute_dtype(impl, input)
    args = [t.to(dtype).contiguous() for t in (input, offset, mask, weight)]
    go = grad_out.to(dtype).contiguous()
    geom = _geom(weight, stride, padding, dilation, deform_groups)
    with _no_autocast(input):
        if impl == 'mmcv':
            grads = mdcn_backward_mmcv(go, *args, has_bias, geom)
        else:
            grads = mdcn_torch._backward(go, *args, geom,
                                         tuple(mask.shape[-2:]), chunk_numel,
                                         needs)
            grads.append(go.sum(dim=(0, 2, 3)) if has_bias else None)
    like = (input, offset, mask, weight, weight[:, 0, 0, 0])
    return [
        g.to(ref.dtype) if need and g is not None else ref.new_empty(0)
        for g, ref, need in zip(grads, like, needs)
    ]


@_mdcn_backward_op.register_fake
def _(grad_out, input, offset, mask, weight, has_bias, stride, padding,
      dilation, deform_groups, impl, chunk_numel, needs):
    like = (input, offset, mask, weight, weight[:, 0, 0, 0])
    return [
        torch.empty_like(ref) if need else ref.new_empty(0)
        for ref, need in zip(like, needs)
    ]


def _setup_context(ctx, inputs, output) -> None:
    (input, offset, mask, weight, bias, stride, padding, dilation,
     deform_groups, impl, chunk_numel) = inputs
    ctx.save_for_backward(input, offset, mask, weight)
    ctx.has_bias = bias is not None
    ctx.args = (stride, padding, dilation, deform_groups, impl, chunk_numel)


def _backward(ctx, grad_out):
    needs = [bool(n) for n in ctx.needs_input_grad[:5]]
    needs[4] = needs[4] and ctx.has_bias
    grads = _mdcn_backward_op(grad_out, *ctx.saved_tensors, ctx.has_bias,
                              *ctx.args, needs)
    grads = [g if need else None for g, need in zip(grads, needs)]
    return tuple(grads) + (None, ) * 6


_mdcn_op.register_autograd(_backward, setup_context=_setup_context)


def _graph_mode() -> bool:
    """TorchScript tracing/scripting or ``torch.export`` (ONNX's dynamo
    exporter): standard operators only, no custom op."""
    if torch.jit.is_tracing() or torch.jit.is_scripting():
        return True
    is_exporting = getattr(torch.compiler, 'is_exporting', None)
    return bool(is_exporting is not None and is_exporting())


def mdcn_apply(input: Tensor, offset: Tensor, mask: Tensor, weight: Tensor,
               bias: Optional[Tensor], stride: Sequence[int],
               padding: Sequence[int], dilation: Sequence[int],
               deform_groups: int, impl: str,
               chunk_numel: Optional[int] = None) -> Tensor:
    """Run the op with a concrete ``impl`` (``'torch'`` or ``'mmcv'``) on
    validated, same-dtype inputs; ``chunk_numel`` is the torch kernel's
    column budget (default :func:`mdcn_torch.default_chunk_numel`)."""
    if impl == 'torch' and _graph_mode():
        dtype = compute_dtype(impl, input)
        cast = [None if t is None else t.to(dtype)
                for t in (input, offset, mask, weight, bias)]
        geom = _geom(weight, stride, padding, dilation, deform_groups)
        return mdcn_torch._forward_graph(*cast, geom, tuple(
            mask.shape[-2:])).to(input.dtype)
    if chunk_numel is None:
        chunk_numel = mdcn_torch.default_chunk_numel(
            input, weight, tuple(mask.shape[-2:]))
    if chunk_numel < 1:
        raise ValueError(f'chunk_numel must be positive, got {chunk_numel}')
    return _mdcn_op(input, offset, mask, weight, bias, list(stride),
                    list(padding), list(dilation), deform_groups, impl,
                    int(chunk_numel))


__all__: Tuple[str, ...] = ('mdcn_apply', 'compute_dtype')

"""Modulated deformable convolution (DCNv2) written with PyTorch operators.

The formulation: for every deformable group and kernel tap, the sampling
positions ``base + offset`` are turned into a ``grid_sample`` grid (bilinear,
zero padding, ``align_corners=False``, so pixel ``p`` maps to exactly ``p``);
one ``grid_sample`` call gathers the columns of a group for all taps, the
columns are multiplied by the mask, and one matrix product with the weight
gives the output.  This is what mmcv's kernel computes (same bilinear rule:
each of the four neighbours outside the image contributes zero), but uses
PyTorch's vectorised ``grid_sample`` and BLAS, which on CPU is much faster
than mmcv's CPU kernel, and it exports to ONNX with standard operators only
(``GridSample``, ``MatMul``, ...).

Memory bound.  A dense im2col of the layer holds ``N * C_in * kh * kw *
H_out * W_out`` elements (mmcv's kernels allocate such a column buffer per
image).  Here the columns are built in chunks of at most ``chunk_numel``
elements, by default a quarter of the im2col (never below
``MIN_CHUNK_NUMEL``, so tiny layers run in one piece).  The forward takes
whole images, else ranges of output rows with all groups (full-depth matrix
products), and holds one chunk at a time.  The backward (the autograd
formula of the custom op in :mod:`mmfapn.ops.mdcn_library`) saves only
the inputs (no columns) and rebuilds the columns chunk by chunk, over whole images, else ranges of deformable groups (their
input gradients are disjoint); it holds two chunk-sized buffers at a time
(the columns and their gradient) plus, for the chunk's images and groups,
the input zero-padded to power-of-two sizes (see below) and its gradient.
Extra memory on top of inputs, outputs and gradients, in elements:

    forward:  chunk_numel + grid and mask of the chunk (3 / C_per_group of it)
    backward: 2 * chunk_numel + 2 * r * (input of the chunk's images and
              groups) + grid of the chunk,  r = padded / real input size < 4

With the default chunk, for 3x3 stride-1 layers (whose input is 1/9 of the
im2col): at most (2 + 2r/9) / 4 im2col, i.e. 0.56 im2col at power-of-two
sizes (every level of a 512x1024 crop) and below 0.73 im2col with any
padding; only when a single group of a single image has more columns than a
chunk (dg = 1 on very large maps) does the padded group plane add up to
2r / (9 * N * dg) im2col instead.

Gradients are those of bilinear sampling.  At integer sampling positions
(zero offsets: FaPN's initial state) bilinear interpolation has a kink and
the one-sided derivative is a convention: the backward samples the input
zero-padded (bottom/right) to power-of-two sizes, where ``(2p + 1) / size``
is exact, so ``grid_sample`` recovers integer positions exactly and takes
mmcv's derivative; and offset gradients at positions ``<= -1`` are zero, as
in mmcv.  The forward and the gradients thus equal mmcv's to rounding, at
integer positions too.  Double backward is not supported.
"""
import math
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

# Chunks smaller than this (in column elements, 4 MiB in float32) cost more
# in Python overhead than they save in memory.
MIN_CHUNK_NUMEL = 1 << 20

_Pair = Tuple[int, int]


def im2col_numel(input: Tensor, weight: Tensor, out_size: _Pair) -> int:
    """Elements of a dense im2col of the layer: N*C_in*kh*kw*H_out*W_out."""
    n, c = input.shape[:2]
    return n * c * weight.shape[2] * weight.shape[3] * out_size[0] * \
        out_size[1]


def default_chunk_numel(input: Tensor, weight: Tensor,
                        out_size: _Pair) -> int:
    """A quarter of the layer's im2col, at least ``MIN_CHUNK_NUMEL``."""
    return max(MIN_CHUNK_NUMEL,
               math.ceil(im2col_numel(input, weight, out_size) / 4))


class _Chunk:
    """Batch range [b0, b1), group range [g0, g1), output rows [r0, r1)."""
    __slots__ = ('b0', 'b1', 'g0', 'g1', 'r0', 'r1')

    def __init__(self, b0, b1, g0, g1, r0, r1):
        self.b0, self.b1, self.g0, self.g1, self.r0, self.r1 = (b0, b1, g0,
                                                                 g1, r0, r1)


def _chunks(n: int, dg: int, out_h: int, unit_row: int, chunk_numel: int,
            order: str = 'rows') -> Iterator[_Chunk]:
    """Split (batch, groups, rows) so each chunk has <= chunk_numel columns
    (one output row of one group of one image is the smallest chunk).

    Whole images first.  Then ``order='rows'`` (forward) takes ranges of
    output rows with all groups: the matrix product keeps its full depth
    C_in * kh * kw and each output element is written once.
    ``order='groups'`` (backward) takes ranges of groups with all rows:
    the chunks' input gradients are then disjoint (no accumulation), and
    the backward's matrix products keep full depth either way.  Either
    falls back to splitting the other dimension too.  ``unit_row`` is the
    column count of one row of one group of one image.
    """
    image = unit_row * dg * out_h
    if image <= chunk_numel:
        nb = chunk_numel // image
        for b0 in range(0, n, nb):
            yield _Chunk(b0, min(n, b0 + nb), 0, dg, 0, out_h)
    elif order == 'rows' and unit_row * dg <= chunk_numel:
        rows = chunk_numel // (unit_row * dg)
        for b in range(n):
            for r0 in range(0, out_h, rows):
                yield _Chunk(b, b + 1, 0, dg, r0, min(out_h, r0 + rows))
    elif order == 'groups' and unit_row * out_h <= chunk_numel:
        gb = chunk_numel // (unit_row * out_h)
        for b in range(n):
            for g0 in range(0, dg, gb):
                yield _Chunk(b, b + 1, g0, min(dg, g0 + gb), 0, out_h)
    elif order == 'rows':
        gb = max(1, chunk_numel // unit_row)
        for b in range(n):
            for r in range(out_h):
                for g0 in range(0, dg, gb):
                    yield _Chunk(b, b + 1, g0, min(dg, g0 + gb), r, r + 1)
    else:
        rows = max(1, chunk_numel // unit_row)
        for b in range(n):
            for g in range(dg):
                for r0 in range(0, out_h, rows):
                    yield _Chunk(b, b + 1, g, g + 1, r0, min(out_h, r0 + rows))


def _pow2(size: int) -> int:
    return 1 << (size - 1).bit_length()


def _grid(offset: Tensor, norm_size: _Pair, kernel: _Pair, stride: _Pair,
          padding: _Pair, dilation: _Pair, dg: int, rows: Tuple[int, int],
          with_outside: bool = False,
          fused: bool = True) -> Tuple[Tensor, Optional[Tensor]]:
    """Normalised sampling grid for output rows ``rows`` of ``offset``.

    offset: (n, 2 * dg' * kh * kw, H_out, W_out) restricted to the groups of
    the chunk (dg' of them); returns the grid (n * dg', kh * kw * rows,
    W_out, 2) in ``grid_sample``'s (x, y) order for an input of size
    ``norm_size`` and, if ``with_outside``, a bool tensor (n * dg',
    kh * kw * rows, W_out, 1) marking positions with y <= -1 or x <= -1.
    ``fused`` writes the grid in two fused passes (eager mode); otherwise
    out-of-place operators only (tracing / export).
    """
    n, _, ho, wo = offset.shape
    kh, kw = kernel
    taps = kh * kw
    r0, r1 = rows
    h, w = norm_size
    dtype, device = offset.dtype, offset.device
    off = offset.view(n, dg, taps, 2, ho, wo)[..., r0:r1, :]
    # position of tap (i, j) at output (y, x): y*s - p + i*d (+ offset),
    # normalised for align_corners=False: pixel p <-> (2p + 1) / size - 1
    out_y = torch.arange(r0, r1, device=device, dtype=dtype) * stride[0] - \
        padding[0]
    out_x = torch.arange(wo, device=device, dtype=dtype) * stride[1] - \
        padding[1]
    tap_y = torch.arange(kh, device=device, dtype=dtype).repeat_interleave(
        kw) * dilation[0]
    tap_x = torch.arange(kw, device=device, dtype=dtype).repeat(kh) * \
        dilation[1]
    base_y = (tap_y.view(taps, 1, 1) + out_y.view(1, -1, 1)) * 2 + 1
    base_x = (tap_x.view(taps, 1, 1) + out_x.view(1, 1, -1)) * 2 + 1
    base_y, base_x = base_y / h - 1, base_x / w - 1
    shape = (n * dg, taps * (r1 - r0), wo)
    if fused:
        grid = torch.empty(n, dg, taps, r1 - r0, wo, 2, dtype=dtype,
                           device=device)
        torch.add(base_x, off[:, :, :, 1], alpha=2.0 / w, out=grid[..., 0])
        torch.add(base_y, off[:, :, :, 0], alpha=2.0 / h, out=grid[..., 1])
        grid = grid.view(*shape, 2)
    else:
        grid = torch.stack((base_x + off[:, :, :, 1] * (2.0 / w),
                            base_y + off[:, :, :, 0] * (2.0 / h)),
                           dim=-1).view(*shape, 2)
    outside = None
    if with_outside:
        # p <= -1  <=>  (2p + 1) / size - 1 <= -1 - 1 / size (monotone)
        outside = (grid[..., :1] <= -1 - 1.0 / w) | (
            grid[..., 1:] <= -1 - 1.0 / h)
    return grid, outside


def _sample(x: Tensor, grid: Tensor) -> Tensor:
    return F.grid_sample(
        x, grid, mode='bilinear', padding_mode='zeros', align_corners=False)


class _ChunkView:
    """Slices of the inputs belonging to one chunk.

    ``norm_size`` (backward): the size the grid is normalised for, that of
    the zero-padded input; it also asks for the ``outside`` mask.
    """

    def __init__(self, ck: _Chunk, input, offset, mask, weight, geom,
                 norm_size: Optional[_Pair] = None):
        kernel, stride, padding, dilation, dg = geom
        n, c, h, w = input.shape
        ho, wo = mask.shape[-2:]
        taps = kernel[0] * kernel[1]
        cpg = c // dg
        self.nb, self.gb = ck.b1 - ck.b0, ck.g1 - ck.g0
        self.rows = ck.r1 - ck.r0
        # (nb * gb, C/dg, H, W): a view (chunks split groups only when nb=1)
        self.x = input[ck.b0:ck.b1].reshape(self.nb, dg, cpg, h,
                                            w)[:, ck.g0:ck.g1].reshape(
                                                self.nb * self.gb, cpg, h, w)
        off = offset[ck.b0:ck.b1, 2 * taps * ck.g0:2 * taps * ck.g1]
        backward = norm_size is not None
        self.grid, self.outside = _grid(off, norm_size or (h, w), kernel,
                                        stride, padding, dilation, self.gb,
                                        (ck.r0, ck.r1), backward)
        self.mask = mask[ck.b0:ck.b1].reshape(
            self.nb, dg, taps, ho, wo)[:, ck.g0:ck.g1, :, ck.r0:ck.r1].reshape(
                self.nb * self.gb, 1, taps * self.rows, wo)
        c_out = weight.shape[0]
        # columns of the chunk are ordered (group, channel, tap): the weight
        # block of groups [g0, g1) is a contiguous column range
        self.weight = weight.reshape(c_out, dg, cpg * taps)[:, ck.g0:ck.g1] \
            .reshape(c_out, self.gb * cpg * taps)
        self.cols_shape = (self.nb, self.gb * cpg * taps, self.rows * wo)


def _out_block(out: Tensor, ck: _Chunk, b: int) -> Tensor:
    """(C_out, rows * W_out) view of ``out`` for image b0 + b of the chunk."""
    c_out, ho, wo = out.shape[1:]
    return out[ck.b0 + b].view(c_out, ho * wo)[:, ck.r0 * wo:ck.r1 * wo]


def _forward(input: Tensor, offset: Tensor, mask: Tensor, weight: Tensor,
             bias: Optional[Tensor], geom, out_size: _Pair,
             chunk_numel: int) -> Tensor:
    kernel, stride, padding, dilation, dg = geom
    n, c = input.shape[:2]
    c_out = weight.shape[0]
    ho, wo = out_size
    if bias is None:
        out = input.new_zeros(n, c_out, ho, wo)
    else:
        out = bias.view(1, c_out, 1, 1).expand(n, c_out, ho, wo).contiguous()
    unit_row = (c // dg) * kernel[0] * kernel[1] * wo
    for ck in _chunks(n, dg, ho, unit_row, chunk_numel):
        v = _ChunkView(ck, input, offset, mask, weight, geom)
        cols = _sample(v.x, v.grid).mul_(v.mask).view(v.cols_shape)
        for b in range(v.nb):
            _out_block(out, ck, b).addmm_(v.weight, cols[b])
        del cols
    return out


def _forward_graph(input: Tensor, offset: Tensor, mask: Tensor,
                   weight: Tensor, bias: Optional[Tensor], geom,
                   out_size: _Pair) -> Tensor:
    """Unchunked, out-of-place version (for tracing / ONNX export)."""
    kernel, stride, padding, dilation, dg = geom
    n, c, h, w = input.shape
    c_out = weight.shape[0]
    ho, wo = out_size
    taps = kernel[0] * kernel[1]
    grid, _ = _grid(offset, (h, w), kernel, stride, padding, dilation, dg,
                    (0, ho), fused=False)
    cols = _sample(input.reshape(n * dg, c // dg, h, w), grid)
    cols = cols * mask.reshape(n * dg, 1, taps * ho, wo)
    out = torch.matmul(
        weight.reshape(c_out, c * taps), cols.reshape(n, c * taps, ho * wo))
    if bias is not None:
        out = out + bias.view(1, c_out, 1)
    return out.reshape(n, c_out, ho, wo)


def _backward(grad_out: Tensor, input: Tensor, offset: Tensor, mask: Tensor,
              weight: Tensor, geom, out_size: _Pair, chunk_numel: int,
              needs: Sequence[bool]) -> List[Optional[Tensor]]:
    """Gradients (input, offset, mask, weight) of :func:`_forward`, those
    not in ``needs`` as None; the columns are rebuilt chunk by chunk (see
    the module docstring).  The bias gradient is the caller's (a sum)."""
    kernel, stride, padding, dilation, dg = geom
    need_x, need_off, need_mask, need_w = needs[:4]
    n, c, h, w = input.shape
    c_out = weight.shape[0]
    ho, wo = out_size
    taps = kernel[0] * kernel[1]
    cpg = c // dg
    # Sample the input zero-padded (bottom/right) to powers of two: then
    # (2p + 1) / size is exact and grid_sample recovers an integer
    # position p exactly, so its one-sided derivative at integer
    # positions (zero offsets: FaPN's initial state) is mmcv's.  The
    # padding is zeros, which is what sampling outside reads anyway.
    hp, wp = _pow2(h), _pow2(w)
    grad_out = grad_out.contiguous()
    chunks = list(_chunks(n, dg, ho, cpg * taps * wo, chunk_numel, 'groups'))
    # chunks are disjoint in (image, group, rows); only a split of the
    # rows makes two chunks share input pixels
    rows_split = chunks[0].r1 - chunks[0].r0 < ho
    grad_x = None
    if need_x:
        grad_x = torch.zeros_like(input) if rows_split else \
            torch.empty_like(input)
    grad_off = torch.empty_like(offset) if need_off else None
    grad_mask = torch.empty_like(mask) if need_mask else None
    grad_w = torch.zeros_like(weight) if need_w else None
    for ck in chunks:
        v = _ChunkView(ck, input, offset, mask, weight, geom,
                       norm_size=(hp, wp))
        x_pad = v.x if (hp, wp) == (h, w) else F.pad(
            v.x, (0, wp - w, 0, hp - h))
        # the sampled columns (nb*gb, cpg, taps*rows, wo); the grid_sample
        # backward reads only its input and grid, so they may be
        # overwritten below
        cols = _sample(x_pad, v.grid)
        go = [_out_block(grad_out, ck, b) for b in range(v.nb)]
        # d(loss)/d(masked columns), same layout
        if v.nb == 1:
            g_cols = torch.mm(v.weight.t(), go[0])
        else:
            g_cols = torch.stack([torch.mm(v.weight.t(), g) for g in go])
        g_cols = g_cols.view_as(cols)
        if need_mask:
            # sum over channels without a chunk-sized temporary
            gm = torch.zeros_like(cols[:, 0])
            for i in range(cpg):
                gm.addcmul_(g_cols[:, i], cols[:, i])
            grad_mask.view(n, dg, taps, ho, wo)[
                ck.b0:ck.b1, ck.g0:ck.g1, :, ck.r0:ck.r1] = gm.view(
                    v.nb, v.gb, taps, v.rows, wo)
            del gm
        if need_w:
            masked = cols.mul_(v.mask).view(v.cols_shape)
            block = grad_w.view(c_out, dg * cpg * taps)[
                :, ck.g0 * cpg * taps:ck.g1 * cpg * taps]
            for b in range(v.nb):
                block.addmm_(go[b], masked[b].t())
            del masked
        del cols
        if need_x or need_off:
            g_cols.mul_(v.mask)
            # grid_sample's own backward kernel (bilinear, zeros,
            # align_corners=False), called directly: a custom op's kernel
            # runs below autograd, so nothing here may rely on autograd
            gx, gg = torch.ops.aten.grid_sampler_2d_backward(
                g_cols, x_pad, v.grid, 0, 0, False, [need_x, need_off])
            del g_cols
            if need_x:
                gx = gx[..., :h, :w].unflatten(0, (v.nb, v.gb))
                dst = grad_x.view(n, dg, cpg, h, w)[ck.b0:ck.b1, ck.g0:ck.g1]
                if rows_split:
                    dst.add_(gx)
                else:
                    dst.copy_(gx)
                del gx
            if need_off:
                # mmcv: no offset gradient at y <= -1 or x <= -1
                # (grid_sample has one at exactly -1, from pixel 0)
                gg = gg.masked_fill_(v.outside, 0).view(
                    v.nb, v.gb, taps, v.rows, wo, 2)
                dst = grad_off.view(n, dg, taps, 2, ho, wo)[
                    ck.b0:ck.b1, ck.g0:ck.g1, :, :, ck.r0:ck.r1]
                # chain rule through the normalisation of _grid
                torch.mul(gg[..., 1], 2.0 / hp, out=dst[:, :, :, 0])
                torch.mul(gg[..., 0], 2.0 / wp, out=dst[:, :, :, 1])
    return [grad_x, grad_off, grad_mask, grad_w]


def modulated_deform_conv2d_torch(input: Tensor,
                                  offset: Tensor,
                                  mask: Tensor,
                                  weight: Tensor,
                                  bias: Optional[Tensor],
                                  stride: _Pair,
                                  padding: _Pair,
                                  dilation: _Pair,
                                  deform_groups: int,
                                  chunk_numel: Optional[int] = None) -> Tensor:
    """DCNv2 in PyTorch operators; arguments already validated.

    Same arguments as :func:`mmfapn.ops.modulated_deform_conv2d` (pairs for
    the geometry), plus ``chunk_numel``: the most column elements built at
    once (default :func:`default_chunk_numel`).  It runs as the custom op
    ``torch.ops.mmfapn.modulated_deform_conv2d`` (see
    :mod:`mmfapn.ops.mdcn_library`, which also says how float16/bfloat16
    are computed); under TorchScript tracing or ``torch.export`` (ONNX) it
    runs unchunked with standard out-of-place operators instead.
    """
    from .mdcn_library import mdcn_apply
    return mdcn_apply(input, offset, mask, weight, bias, stride, padding,
                      dilation, deform_groups, 'torch', chunk_numel)


__all__: List[str] = [
    'modulated_deform_conv2d_torch', 'im2col_numel', 'default_chunk_numel',
    'MIN_CHUNK_NUMEL'
]

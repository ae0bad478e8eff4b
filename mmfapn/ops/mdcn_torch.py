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

The gather forward (CPU, layers of at least ``GATHER_MIN_POSITIONS``
sampling positions: FaPN's levels down to about 1/16 of a 512x1024 image).
``grid_sample`` spends about as long as the matrix product there, and uses
one thread per image and group.  Instead the input is copied once per call
into a zero-padded channels-last table (a row per pixel and group, C/dg
channels); each chunk computes its positions in pixel units (as mmcv, one
rounding), the four neighbours' table rows and their bilinear weights times
the mask, and one ``embedding_bag`` (sum mode, parallel over all positions)
sums them into the columns, a row per output pixel.  Smaller layers keep
``grid_sample``, cheaper per call there (measured: docs/speed.md).  The
gather clamps positions to two pixels around the image, where every
neighbour is a zero of the table: a position outside, infinite or NaN reads
zeros, as in mmcv (``grid_sample`` gives NaN for NaN offsets).

Memory bound.  A dense im2col of the layer holds ``N * C_in * kh * kw *
H_out * W_out`` elements (mmcv's kernels allocate such a column buffer per
image).  Here the columns are built in chunks of at most ``chunk_numel``
elements, by default a quarter of the im2col but at most
``MAX_CHUNK_BYTES`` (16 MiB) and never below ``MIN_CHUNK_NUMEL`` (tiny
layers run in one piece); the backward's chunks are at most
``MAX_BACKWARD_CHUNK_BYTES`` (4 MiB) of that.  Both caps are speed
matters: glibc's malloc serves blocks above its mmap threshold (at most
32 MiB) with ``mmap`` and unmaps them on free, so a larger per-call buffer
page-faults on every call; and 4 MiB backward chunks made the
forward+backward of FaPN's P2 and P3 layers 10-25% faster than 16 MiB
ones (measured: docs/speed.md; likely because the band of input rows a
chunk's gradient scatters into is then smaller, about a core's cache).

The forward takes whole images, else ranges of output rows with all groups
(full-depth matrix products), and holds one chunk at a time.  The backward
(the autograd formula of the custom op in :mod:`mmfapn.ops.mdcn_library`)
saves only the inputs (no columns) and rebuilds the columns chunk by chunk:
whole images, else blocks of deformable groups with all rows (their input
gradients are disjoint), else blocks of ``min(deform_groups, threads)``
groups by ranges of output rows, whose input gradients are accumulated
(all groups by shorter ranges of rows would give full-depth matrix
products, but each range then samples a band of input rows several times
its height: measured, no faster).
PyTorch's CPU ``grid_sample`` (and its backward) parallelises over the
batch dimension only, which here is images x groups of the chunk: a block
of at least as many groups as threads keeps every thread busy (with fewer
groups than threads, e.g. deform_groups 1, the sampling runs on one
thread).  The backward holds three chunk-sized buffers at a time (the
columns, their gradient and, briefly, their product for the mask
gradient) plus, for the chunk's images and groups, the input zero-padded
to power-of-two sizes (see below) and its gradient (of the band of rows
sampled, when rows are split).  Extra memory on top
of inputs, outputs and gradients, in elements:

    forward:  chunk_numel + grid and mask of the chunk (3 / C_per_group
              of it);
              gather: the table (the input times (H + 4)(W + 4) / HW)
              and at most 4/3 * chunk_numel for the chunk's columns and
              temporaries (the chunk budgets max(C_per_group, 24)
              elements per position; the columns take C_per_group, the
              positions, indices and weights at most 13, of which 8
              live beside the columns)
    backward: 3 * chunk_numel + 2 * r * (input of the chunk's images
              and groups) + grid, mask and position temporaries of the
              chunk (about 6 / C_per_group of it),
              r = padded / real input size < 4
    (with ``MMFAPN_DCN_CPU_GEMM=bfloat16``: one bfloat16 chunk more in
    each, half a float32 chunk, plus the weight and, in the backward,
    the output gradient in bfloat16)

Here ``chunk_numel`` is the backward's own, ``min(chunk_numel,
MAX_BACKWARD_CHUNK_BYTES / itemsize)``.  The chunk's images and groups
hold at most ``chunk_numel / (kh * kw)`` input elements for stride-1
layers (their columns fit in the chunk) or ``min(deform_groups, threads)``
groups of one image (row ranges), so with the default chunk the forward's
extra memory is at most about ``(1 + 3/C_per_group) * min(im2col / 4, 16
MiB)`` and the backward's ``(3 + 2r/9) * min(im2col / 4, 4 MiB)`` for 3x3
stride-1 layers, plus ``2r`` times the input of ``min(deform_groups,
threads)`` groups when rows are split.  One output row of the chunk's
groups of one image is the smallest chunk: only when that exceeds
``chunk_numel`` (very wide maps) does a chunk exceed it.

Sampling positions and gradients.  Bilinear sampling has a kink at
integer positions: the offset gradient (the slope of the interpolant) jumps
there, so it depends on which integer cell a position falls in.  The
backward computes each position in pixel units as mmcv does
(``y * stride - pad + i * dilation + offset``, rounded once), keeps its
cell ``floor(p)`` and rounds its fraction to a multiple of ``Q = S * eps``
(``S`` the power-of-two size of the zero-padded input it samples, ``eps``
the dtype's machine epsilon; 3e-5 px in float32 at S = 256), never up to
the next integer.  On such positions the normalised grid and
``grid_sample``'s inverse mapping are exact, in any order of operations, so
``grid_sample`` uses mmcv's cell for every position, including those within
a rounding error of an integer (a float32 grid normalised directly puts
some of those in the neighbouring cell).  A position moves by at most
``Q / 2`` (mmcv's own rounding of it is up to ``Q / 4``).  The forward, a
continuous function of the positions, normalises them directly for the
real input size (two fused passes, exact to rounding).  At integer
positions (zero offsets: FaPN's initial state) the backward takes mmcv's
one-sided derivative, and offset gradients at positions ``<= -1`` are
zero, as in mmcv.  The forward and the gradients thus equal mmcv's to
rounding everywhere.  Double backward is not supported.
"""
import functools
import math
import os
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

# Chunks smaller than this (in column elements, 4 MiB in float32) cost more
# in Python overhead than they save in memory.
MIN_CHUNK_NUMEL = 1 << 20
# The default chunk's cap in bytes: below glibc's largest mmap threshold
# (32 MiB on 64-bit), so the column buffers are reused from the heap
# instead of being mapped and page-faulted on every call.
MAX_CHUNK_BYTES = 16 << 20
# The backward's cap: a speed matter (see the module docstring).
MAX_BACKWARD_CHUNK_BYTES = 4 << 20

# CPU forwards of layers with at least this many sampling positions
# (images x deform groups x taps x output pixels) gather the columns with
# embedding_bag; smaller ones use grid_sample, which costs less per call
# there (measured: docs/speed.md).
GATHER_MIN_POSITIONS = 1 << 16

# Opt-in: the three matrix products of the layer in bfloat16 on CPU
# (float32 accumulation inside, bfloat16 results added to float32), for
# CPUs with AMX; sampling, positions and everything else stay float32.
ENV_CPU_GEMM = 'MMFAPN_DCN_CPU_GEMM'

_Pair = Tuple[int, int]


def cpu_gemm_dtype(x: Tensor) -> Optional[torch.dtype]:
    """``torch.bfloat16`` where ``MMFAPN_DCN_CPU_GEMM=bfloat16`` asks for
    bfloat16 matrix products and ``x`` is a float32 CPU tensor, else None
    (the products run in the computing dtype).

    Raises:
        ValueError: the variable is set to anything but ``float32`` or
            ``bfloat16``.
    """
    value = os.environ.get(ENV_CPU_GEMM, '').strip().lower()
    if value in ('', 'float32'):
        return None
    if value != 'bfloat16':
        raise ValueError(f"environment variable {ENV_CPU_GEMM} must be "
                         f"'float32' or 'bfloat16', got {value!r}")
    if x.device.type == 'cpu' and x.dtype == torch.float32:
        return torch.bfloat16
    return None


def _weight_block(weight: Tensor, dg: int, g0: int, g1: int) -> Tensor:
    """(C_out, (g1 - g0) * C_in/dg * kh * kw) columns of the weight for the
    groups [g0, g1): columns are ordered (group, channel, tap), so the
    block is a contiguous column range."""
    c_out = weight.shape[0]
    per_group = weight[0].numel() // dg
    return weight.reshape(c_out, dg, per_group)[:, g0:g1].reshape(
        c_out, (g1 - g0) * per_group)


def im2col_numel(input: Tensor, weight: Tensor, out_size: _Pair) -> int:
    """Elements of a dense im2col of the layer: N*C_in*kh*kw*H_out*W_out."""
    n, c = input.shape[:2]
    return n * c * weight.shape[2] * weight.shape[3] * out_size[0] * \
        out_size[1]


def default_chunk_numel(input: Tensor, weight: Tensor,
                        out_size: _Pair) -> int:
    """A quarter of the layer's im2col, at least ``MIN_CHUNK_NUMEL`` and at
    most ``MAX_CHUNK_BYTES`` of the computing dtype (float32 for half
    inputs), whichever is smaller."""
    itemsize = max(4, input.element_size())
    cap = max(1, MAX_CHUNK_BYTES // itemsize)
    return min(cap, max(MIN_CHUNK_NUMEL,
                        math.ceil(im2col_numel(input, weight, out_size) / 4)))


def backward_chunk_numel(input: Tensor) -> int:
    """The most column elements the backward builds at once:
    ``MAX_BACKWARD_CHUNK_BYTES`` of the computing dtype (float32 for half
    inputs); a smaller ``chunk_numel`` of the call applies to both."""
    return MAX_BACKWARD_CHUNK_BYTES // max(4, input.element_size())


class _Chunk:
    """Batch range [b0, b1), group range [g0, g1), output rows [r0, r1)."""
    __slots__ = ('b0', 'b1', 'g0', 'g1', 'r0', 'r1')

    def __init__(self, b0, b1, g0, g1, r0, r1):
        self.b0, self.b1, self.g0, self.g1, self.r0, self.r1 = (b0, b1, g0,
                                                                 g1, r0, r1)


def _ranges(total: int, most: int) -> List[Tuple[int, int]]:
    """[0, total) in equal ranges of at most ``most`` (at least 1)."""
    count = math.ceil(total / max(1, most))
    size = math.ceil(total / count)
    return [(s, min(total, s + size)) for s in range(0, total, size)]


def _chunks(n: int, dg: int, out_h: int, unit_row: int, chunk_numel: int,
            order: str = 'rows', threads: int = 1) -> Iterator[_Chunk]:
    """Split (batch, groups, rows) so each chunk has <= chunk_numel columns
    where possible; ``unit_row`` is the column count of one output row of
    one group of one image.

    Whole images first.  Then ``order='rows'`` (forward) takes ranges of
    output rows with all groups: the matrix product keeps its full depth
    C_in * kh * kw and each output element is written once (one row of one
    group is the smallest chunk).  ``order='groups'`` (backward) takes
    blocks of groups with all rows if at least ``min(dg, threads)`` groups
    fit (the chunks' input gradients are then disjoint), else blocks of
    ``min(dg, threads)`` groups (fewer if one row of them exceeds the
    chunk) by ranges of rows, whose input gradients overlap: the caller
    accumulates them.  Row ranges come in nearly equal sizes.
    """
    image = unit_row * dg * out_h
    if image <= chunk_numel:
        nb = chunk_numel // image
        for b0 in range(0, n, nb):
            yield _Chunk(b0, min(n, b0 + nb), 0, dg, 0, out_h)
        return
    if order == 'rows':
        if unit_row * dg <= chunk_numel:
            for b in range(n):
                for r0, r1 in _ranges(out_h, chunk_numel // (unit_row * dg)):
                    yield _Chunk(b, b + 1, 0, dg, r0, r1)
        else:
            gb = max(1, chunk_numel // unit_row)
            for b in range(n):
                for r in range(out_h):
                    for g0 in range(0, dg, gb):
                        yield _Chunk(b, b + 1, g0, min(dg, g0 + gb), r, r + 1)
        return
    want = max(1, min(dg, threads))
    gb = chunk_numel // (unit_row * out_h)
    if gb >= want:
        rows = [(0, out_h)]
    else:
        gb = max(1, min(want, chunk_numel // unit_row))
        rows = _ranges(out_h, chunk_numel // (unit_row * gb))
    gb = min(gb, dg)
    for b in range(n):
        for g0 in range(0, dg, gb):
            for r0, r1 in rows:
                yield _Chunk(b, b + 1, g0, min(dg, g0 + gb), r0, r1)


def _pow2(size: int) -> int:
    return 1 << (size - 1).bit_length()


def _taps_base(kernel: _Pair, stride: _Pair, padding: _Pair,
               dilation: _Pair, rows: Tuple[int, int], wo: int, dtype,
               device) -> Tuple[Tensor, Tensor]:
    """Integer part of mmcv's sampling position of tap (i, j) at output
    (y, x): ``y*s - p + i*d`` (taps, rows, 1) and ``x*s - p + j*d``
    (taps, 1, W_out); exact in floating point."""
    kh, kw = kernel
    taps = kh * kw
    out_y = torch.arange(rows[0], rows[1], device=device,
                         dtype=dtype) * stride[0] - padding[0]
    out_x = torch.arange(wo, device=device, dtype=dtype) * stride[1] - \
        padding[1]
    tap_y = torch.arange(kh, device=device, dtype=dtype).repeat_interleave(
        kw) * dilation[0]
    tap_x = torch.arange(kw, device=device, dtype=dtype).repeat(kh) * \
        dilation[1]
    return (tap_y.view(taps, 1, 1) + out_y.view(1, -1, 1),
            tap_x.view(taps, 1, 1) + out_x.view(1, 1, -1))


def _normalised_base(kernel: _Pair, stride: _Pair, padding: _Pair,
                     dilation: _Pair, rows: Tuple[int, int], wo: int,
                     norm_size: _Pair, dtype,
                     device) -> Tuple[Tensor, Tensor]:
    """:func:`_taps_base` normalised for ``grid_sample`` with
    ``align_corners=False`` (pixel p <-> (2p + 1) / size - 1)."""
    base_y, base_x = _taps_base(kernel, stride, padding, dilation, rows, wo,
                                dtype, device)
    h, w = norm_size
    return (base_y * 2 + 1) / h - 1, (base_x * 2 + 1) / w - 1


@functools.lru_cache(maxsize=64)
def _cached_base(kernel: _Pair, stride: _Pair, padding: _Pair,
                 dilation: _Pair, ho: int, wo: int, norm_size: _Pair, dtype,
                 device) -> Tuple[Tensor, Tensor]:
    """:func:`_normalised_base` of all output rows (read only)."""
    return _normalised_base(kernel, stride, padding, dilation, (0, ho), wo,
                            norm_size, dtype, device)


def _grid(offset: Tensor, norm_size: _Pair, kernel: _Pair, stride: _Pair,
          padding: _Pair, dilation: _Pair, dg: int, rows: Tuple[int, int],
          fused: bool = True) -> Tensor:
    """Normalised sampling grid for output rows ``rows`` of ``offset``
    (forward): the position normalised directly, exact to rounding.

    offset: (n, 2 * dg' * kh * kw, H_out, W_out) restricted to the groups of
    the chunk (dg' of them); returns the grid (n * dg', kh * kw * rows,
    W_out, 2) in ``grid_sample``'s (x, y) order for an input of size
    ``norm_size``.  ``fused`` writes the grid in two fused passes (eager
    mode); otherwise out-of-place operators only (tracing / export).
    """
    n, _, ho, wo = offset.shape
    taps = kernel[0] * kernel[1]
    r0, r1 = rows
    h, w = norm_size
    off = offset.view(n, dg, taps, 2, ho, wo)[..., r0:r1, :]
    shape = (n * dg, taps * (r1 - r0), wo, 2)
    if not fused:
        base_y, base_x = _normalised_base(kernel, stride, padding, dilation,
                                          rows, wo, norm_size, offset.dtype,
                                          offset.device)
        return torch.stack((base_x + off[:, :, :, 1] * (2.0 / w),
                            base_y + off[:, :, :, 0] * (2.0 / h)),
                           dim=-1).view(shape)
    # every chunk of a call (and every call of the layer) shares the base
    # of all rows: computed once, sliced per chunk
    base_y, base_x = _cached_base(kernel, stride, padding, dilation, ho, wo,
                                  norm_size, offset.dtype, offset.device)
    base_y = base_y[:, r0:r1]
    grid = torch.empty(n, dg, taps, r1 - r0, wo, 2, dtype=offset.dtype,
                       device=offset.device)
    torch.add(base_x, off[:, :, :, 1], alpha=2.0 / w, out=grid[..., 0])
    torch.add(base_y, off[:, :, :, 0], alpha=2.0 / h, out=grid[..., 1])
    return grid.view(shape)


@functools.lru_cache(maxsize=64)
def _exact_constants(pow2_size: _Pair, dtype: torch.dtype,
                     device: torch.device) -> Tuple[Tensor, ...]:
    """Per-axis (x, y) constants of :func:`_grid_exact`: 1/Q, 1/Q - 1,
    2/S and 2Q/S, exact in ``dtype`` (powers of two, or one less)."""
    size = pow2_size[::-1]
    q = [s * torch.finfo(dtype).eps for s in size]
    values = ([1 / v for v in q], [1 / v - 1 for v in q],
              [2 / s for s in size], [2 * v / s for v, s in zip(q, size)])
    return tuple(
        torch.tensor(v, dtype=dtype, device=device) for v in values)


def _grid_exact(offset: Tensor, pow2_size: _Pair, kernel: _Pair,
                stride: _Pair, padding: _Pair, dilation: _Pair, dg: int,
                rows: Tuple[int, int], sub_plane: bool = False
                ) -> Tuple[Tensor, Tensor, int, int]:
    """The grid of :func:`_grid` (backward), on mmcv's integer cells.

    ``pow2_size``: the power-of-two size (Hp, Wp) of the zero-padded input.
    The position ``p`` is computed in pixel units as mmcv does, its
    fraction rounded to a multiple ``k * Q`` of ``Q = S * eps`` with
    ``k <= 1/Q - 1`` (the cell ``floor(p)`` is kept), and the grid written
    as ``(floor(p) - origin) * 2/S + (1/S - 1) + k * 2Q/S``, every term and
    sum exact: ``grid_sample`` maps it back to exactly ``floor(p) - origin
    + k * Q``, in any order of operations (see the module docstring).

    With ``sub_plane``, the grid addresses only the band of input rows
    ``[y0, y0 + Hs)`` that the positions can reach (``Hs`` a power of two,
    ``y0 + Hs <= Hp``; rows beyond the reach read zeros either way), so
    that the input gradient of a range of output rows is that band, not
    the whole plane (finding the band reads two numbers back from the
    device: a host sync per chunk on CUDA).  Returns the grid (n * dg',
    kh * kw * rows, W_out, 2), a bool tensor (n * dg', kh * kw * rows,
    W_out, 1) marking positions with y <= -1 or x <= -1 (mmcv has no offset
    gradient there), and (y0, Hs) (``(0, Hp)`` without ``sub_plane``).
    """
    n, _, ho, wo = offset.shape
    taps = kernel[0] * kernel[1]
    r0, r1 = rows
    dtype, device = offset.dtype, offset.device
    off = offset.view(n, dg, taps, 2, ho, wo)[..., r0:r1, :]
    base_y, base_x = _taps_base(kernel, stride, padding, dilation, rows, wo,
                                dtype, device)
    # (x, y) pairs in the grid's layout; one rounding, as mmcv's position
    pos = torch.empty(n, dg, taps, r1 - r0, wo, 2, dtype=dtype,
                      device=device)
    torch.add(off[:, :, :, 1], base_x, out=pos[..., 0])
    torch.add(off[:, :, :, 0], base_y, out=pos[..., 1])
    shape = (n * dg, taps * (r1 - r0), wo)
    outside = (pos <= -1).any(-1, keepdim=True).view(*shape, 1)
    hp, wp = pow2_size
    y0, hs = 0, hp
    if sub_plane:
        lo, hi = (float(v) for v in torch.aminmax(pos[..., 1]))
        if math.isfinite(lo) and math.isfinite(hi):
            # rows of the bilinear neighbours, clipped to the plane
            lo = min(max(math.floor(lo), 0), hp - 1)
            hi = min(max(math.floor(hi) + 1, 0), hp - 1)
            hs = _pow2(hi - lo + 1)
            y0 = min(lo, hp - hs)
    inv_q, k_max, scale, step = _exact_constants((hs, wp), dtype, device)
    # (2 * (cell - origin) + 1) / S - 1 = cell * 2/S + shift, exact
    shift = torch.tensor([1 / wp - 1, (1 - 2 * y0) / hs - 1], dtype=dtype,
                         device=device)
    cell = pos.floor()
    k = pos.sub_(cell).mul_(inv_q).round_().clamp_(max=k_max)
    grid = cell.mul_(scale).add_(shift).addcmul_(k, step)
    return grid.view(*shape, 2), outside, y0, hs


def _sample(x: Tensor, grid: Tensor) -> Tensor:
    return F.grid_sample(
        x, grid, mode='bilinear', padding_mode='zeros', align_corners=False)


class _ChunkView:
    """Slices of the inputs belonging to one chunk.

    ``norm_size`` (backward): the size of the zero-padded input, for
    :func:`_grid_exact` (which also gives the ``outside`` mask and, for a
    range of rows, the band ``(y0, hs)`` of input rows sampled).
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
        if norm_size is None:
            self.grid = _grid(off, (h, w), kernel, stride, padding,
                              dilation, self.gb, (ck.r0, ck.r1))
            self.outside = None
        else:
            self.grid, self.outside, self.y0, self.hs = _grid_exact(
                off, norm_size, kernel, stride, padding, dilation, self.gb,
                (ck.r0, ck.r1), sub_plane=self.rows < ho)
        self.mask = mask[ck.b0:ck.b1].reshape(
            self.nb, dg, taps, ho, wo)[:, ck.g0:ck.g1, :, ck.r0:ck.r1].reshape(
                self.nb * self.gb, 1, taps * self.rows, wo)
        self.weight = _weight_block(weight, dg, ck.g0, ck.g1)
        self.cols_shape = (self.nb, self.gb * cpg * taps, self.rows * wo)


# The gather forward (CPU): the input as a table of rows (one pixel of one
# group: C/dg channels), zero-padded by this many pixels on every side so
# that every bilinear neighbour of a clamped cell is a row of the table.
_GATHER_PAD = 2
# Index and weight temporaries per sampled position, in elements: a chunk
# budgets at least this many per position (see _forward_gather).
_GATHER_PREP = 24


def _gather_table(input: Tensor, dg: int) -> Tensor:
    """(N * dg * (H + 4) * (W + 4), C/dg): the input channels-last per
    group, zero-padded by ``_GATHER_PAD`` pixels; row ``((b * dg + g) * Hp
    + y + 2) * Wp + x + 2`` holds pixel (y, x) of group g of image b."""
    n, c, h, w = input.shape
    p = _GATHER_PAD
    table = input.new_zeros(n, dg, h + 2 * p, w + 2 * p, c // dg)
    table[:, :, p:p + h, p:p + w].copy_(
        input.view(n, dg, c // dg, h, w).permute(0, 1, 3, 4, 2))
    return table.view(-1, c // dg)


@functools.lru_cache(maxsize=16)
def _gather_base(kernel: _Pair, stride: _Pair, padding: _Pair,
                 dilation: _Pair, rows: int, wo: int, nb: int, gb: int,
                 in_size: _Pair, dg: int, dtype,
                 device) -> Tuple[Tensor, Tensor, Tensor]:
    """Constants of :func:`_gather_columns` for chunks of ``rows`` output
    rows (from row 0), ``nb`` images and ``gb`` groups, in the layout of
    its positions (images, rows, W_out, groups, taps): the integer part of
    mmcv's sampling position, ``y * s - p + i * d`` (rows, W_out, gb,
    taps) and ``x * s - p + j * d`` (1, W_out, gb, taps), and the table
    row of pixel (0, 0) of each image and group relative to the chunk's
    first (nb, 1, W_out, gb, taps), expanded so that every operator on
    them runs over long contiguous rows (read only)."""
    base_y, base_x = _taps_base(kernel, stride, padding, dilation, (0, rows),
                                wo, dtype, device)
    taps = kernel[0] * kernel[1]
    y = base_y.permute(1, 2, 0).unsqueeze(2).expand(rows, wo, gb, taps)
    x = base_x.permute(1, 2, 0).unsqueeze(2).expand(1, wo, gb, taps)
    p = _GATHER_PAD
    hp, wp = in_size[0] + 2 * p, in_size[1] + 2 * p
    image_group = torch.arange(nb, device=device).view(nb, 1) * dg + \
        torch.arange(gb, device=device)
    first = ((image_group * hp + p) * wp + p).view(nb, 1, 1, gb, 1)
    return (y.contiguous(), x.contiguous(),
            first.to(torch.int32).expand(nb, 1, wo, gb, taps).contiguous())


def _index_dtype(rows: int) -> torch.dtype:
    return torch.int32 if rows < 2**31 else torch.int64


def _gather_columns(table: Tensor, offset: Tensor, mask: Tensor, geom,
                    in_size: _Pair, ck: _Chunk) -> Tensor:
    """Masked columns of a chunk, (nb, rows * W_out, gb * taps * C/dg), a
    row per output position, columns ordered (group, tap, channel).

    The chunk's offsets and mask are copied into that layout first (y
    and x planes, (images, rows, W_out, groups, taps)).  Each position is
    computed in pixel units as mmcv does (``y * s - p + i * d + offset``,
    one rounding) and clamped to [-2, H] x [-2, W] (a position outside
    then has all four neighbours in the zero border; NaN reads zeros, as
    in mmcv); one ``embedding_bag`` sums the four neighbouring rows of the
    table weighted by the bilinear weights times the mask.
    """
    kernel, stride, padding, dilation, dg = geom
    h, w = in_size
    nb, gb, rows = ck.b1 - ck.b0, ck.g1 - ck.g0, ck.r1 - ck.r0
    n, ho, wo = offset.shape[0], offset.shape[2], offset.shape[3]
    taps = kernel[0] * kernel[1]
    dtype, device = offset.dtype, offset.device
    p = _GATHER_PAD
    wp = w + 2 * p
    base_y, base_x, first_row = _gather_base(kernel, stride, padding,
                                             dilation, rows, wo, nb, gb,
                                             in_size, dg, dtype, device)
    sl = (slice(ck.b0, ck.b1), slice(ck.g0, ck.g1), slice(None))
    rows_sl = slice(ck.r0, ck.r1)
    off = offset.view(n, dg, taps, 2, ho, wo)[sl + (slice(None), rows_sl)]
    off = off.permute(3, 0, 4, 5, 1, 2)
    planes = []
    for axis, base, shift, size in ((0, base_y, ck.r0 * stride[0], h),
                                    (1, base_x, 0, w)):
        # (integer part + shift, exact) + offset: one rounding, as mmcv;
        # the chunk's offsets transposed into a new tensor (never into the
        # caller's, which the backward reads)
        pos = off[axis].clone(memory_format=torch.contiguous_format)
        pos.add_(torch.add(base, shift) if shift else base)
        pos.nan_to_num_(-p).clamp_(-p, size)
        cell = pos.floor()
        planes.append((cell, pos.sub_(cell)))
    (cell_y, fy), (cell_x, fx) = planes
    itype = _index_dtype(table.shape[0])
    # table row of the cell's top-left neighbour
    first = cell_x.to(itype).add_(cell_y.to(itype), alpha=wp)
    first += first_row
    first += (ck.b0 * dg + ck.g0) * (h + 2 * p) * wp
    del cell_y, cell_x, planes
    index = first.new_empty(*first.shape, 4)
    for k, step in enumerate((0, 1, wp, wp + 1)):
        torch.add(first, step, out=index[..., k])
    del first
    m = mask.view(n, dg, taps, ho, wo)[sl + (rows_sl, )].permute(
        0, 3, 4, 1, 2).contiguous()
    wy1 = fy.mul_(m)
    wy0 = torch.sub(m, wy1)
    wx0 = torch.sub(1, fx)
    weights = index.new_empty(index.shape, dtype=dtype)
    for k, (a, b) in enumerate(((wy0, wx0), (wy0, fx), (wy1, wx0),
                                (wy1, fx))):
        torch.mul(a, b, out=weights[..., k])
    del wy0, wy1, wx0, fx, m
    cols = F.embedding_bag(
        index.view(-1, 4), table, per_sample_weights=weights.view(-1, 4),
        mode='sum')
    return cols.view(nb, rows * wo, -1)


def _forward_gather(input: Tensor, offset: Tensor, mask: Tensor,
                    weight: Tensor, bias: Optional[Tensor], geom,
                    out_size: _Pair, chunk_numel: int) -> Tensor:
    """:func:`_forward` on CPU with :func:`_gather_columns` instead of
    ``grid_sample``: the same chunks (budgeting the index temporaries),
    the same matrix products on the transposed columns."""
    kernel, stride, padding, dilation, dg = geom
    n, c, h, w = input.shape
    c_out = weight.shape[0]
    ho, wo = out_size
    taps = kernel[0] * kernel[1]
    cpg = c // dg
    unit_row = max(cpg, _GATHER_PREP) * taps * wo
    chunks = list(_chunks(n, dg, ho, unit_row, chunk_numel))
    once = all(ck.g1 - ck.g0 == dg for ck in chunks)
    out = _new_output(input, c_out, out_size, bias, once)
    bias_col = None if bias is None else bias.view(c_out, 1)
    table = _gather_table(input, dg)
    # columns ordered (group, tap, channel), as the gathered columns
    weight_gtc = weight.view(c_out, dg, cpg, taps).transpose(2, 3).reshape(
        c_out, dg * taps * cpg)
    low = cpu_gemm_dtype(input)
    if low is not None:
        weight_gtc = weight_gtc.to(low)
        cols_low = input.new_empty(
            max(_numel(ck, cpg * taps * wo) for ck in chunks), dtype=low)
    for ck in chunks:
        cols = _gather_columns(table, offset, mask, geom, (h, w), ck)
        wb = weight_gtc[:, ck.g0 * taps * cpg:ck.g1 * taps * cpg]
        if low is not None:
            cols = cols_low[:cols.numel()].view(cols.shape).copy_(cols)
        for b in range(ck.b1 - ck.b0):
            _product_into(_out_block(out, ck, b), wb, cols[b].t(), bias_col,
                          once, low is not None)
        del cols  # before the next chunk allocates (see _forward_grid)
    return out


def _out_block(out: Tensor, ck: _Chunk, b: int) -> Tensor:
    """(C_out, rows * W_out) view of ``out`` for image b0 + b of the chunk."""
    c_out, ho, wo = out.shape[1:]
    return out[ck.b0 + b].view(c_out, ho * wo)[:, ck.r0 * wo:ck.r1 * wo]


def _new_output(input: Tensor, c_out: int, out_size: _Pair,
                bias: Optional[Tensor], once: bool) -> Tensor:
    """The forward's output.  Chunks with all groups (``once``) are
    disjoint blocks of it: each is written once by its matrix product
    (bias included), no zero fill.  Blocks of groups (very wide maps)
    accumulate into a zeroed output holding the bias.  A new tensor in
    every case (``expand(...)`` of the bias for a 1x1 output of one image
    would be the bias itself)."""
    n = input.shape[0]
    if once:
        return input.new_empty(n, c_out, *out_size)
    out = input.new_zeros(n, c_out, *out_size)
    if bias is not None:
        out += bias.view(1, c_out, 1, 1)
    return out


def _product_into(block: Tensor, weight: Tensor, cols: Tensor,
                  bias_col: Optional[Tensor], once: bool, low: bool):
    """``block`` (the output's (C_out, pixels) view) = or += ``weight @
    cols`` (+ bias when ``once``); ``low``: bfloat16 operands, the product
    added to the float32 block."""
    if low:
        product = torch.mm(weight, cols)
        if not once:
            block.add_(product)
        elif bias_col is None:
            block.copy_(product)
        else:
            torch.add(bias_col, product, out=block)
    # in place on the strided block: ``out=`` would compute into a
    # temporary and copy it over
    elif not once:
        block.addmm_(weight, cols)
    elif bias_col is None:
        block.addmm_(weight, cols, beta=0)
    else:
        block.copy_(bias_col.expand_as(block))
        block.addmm_(weight, cols)


def _forward(input: Tensor, offset: Tensor, mask: Tensor, weight: Tensor,
             bias: Optional[Tensor], geom, out_size: _Pair,
             chunk_numel: int) -> Tensor:
    """The layer's output: :func:`_forward_gather` on CPU for layers of at
    least ``GATHER_MIN_POSITIONS`` sampling positions, else
    :func:`_forward_grid`."""
    kernel, dg = geom[0], geom[4]
    positions = input.shape[0] * dg * kernel[0] * kernel[1] * \
        out_size[0] * out_size[1]
    if input.device.type == 'cpu' and positions >= GATHER_MIN_POSITIONS:
        return _forward_gather(input, offset, mask, weight, bias, geom,
                               out_size, chunk_numel)
    return _forward_grid(input, offset, mask, weight, bias, geom, out_size,
                         chunk_numel)


def _forward_grid(input: Tensor, offset: Tensor, mask: Tensor,
                  weight: Tensor, bias: Optional[Tensor], geom,
                  out_size: _Pair, chunk_numel: int) -> Tensor:
    """The forward with ``grid_sample`` (any device)."""
    kernel, stride, padding, dilation, dg = geom
    n, c = input.shape[:2]
    c_out = weight.shape[0]
    ho, wo = out_size
    unit_row = (c // dg) * kernel[0] * kernel[1] * wo
    chunks = list(_chunks(n, dg, ho, unit_row, chunk_numel))
    once = all(ck.g1 - ck.g0 == dg for ck in chunks)
    out = _new_output(input, c_out, out_size, bias, once)
    bias_col = None if bias is None else bias.view(c_out, 1)
    low = cpu_gemm_dtype(input)
    if low is not None:
        weight_low = weight.to(low)
        cols_low = input.new_empty(max(_numel(ck, unit_row) for ck in chunks),
                                   dtype=low)
    for ck in chunks:
        v = _ChunkView(ck, input, offset, mask, weight, geom)
        cols = _sample(v.x, v.grid).mul_(v.mask).view(v.cols_shape)
        if low is not None:
            w_low = _weight_block(weight_low, dg, ck.g0, ck.g1)
            cols = cols_low[:cols.numel()].view(v.cols_shape).copy_(cols)
        for b in range(v.nb):
            _product_into(_out_block(out, ck, b),
                          v.weight if low is None else w_low, cols[b],
                          bias_col, once, low is not None)
        # free this chunk's columns, grid and mask before the next chunk
        # allocates its own: the next chunk's blocks then reuse the freed
        # ones in the same order (otherwise its grid can land in the freed
        # column block, its columns then grow the heap, page-faulting
        # fresh memory on some calls and not on others)
        del cols, v
    return out


def _numel(ck: _Chunk, unit_row: int) -> int:
    """Column elements of a chunk (``unit_row``: one output row of one
    group of one image)."""
    return (ck.b1 - ck.b0) * (ck.g1 - ck.g0) * (ck.r1 - ck.r0) * unit_row


def _forward_graph(input: Tensor, offset: Tensor, mask: Tensor,
                   weight: Tensor, bias: Optional[Tensor], geom,
                   out_size: _Pair) -> Tensor:
    """Unchunked, out-of-place version (for tracing / ONNX export)."""
    kernel, stride, padding, dilation, dg = geom
    n, c, h, w = input.shape
    c_out = weight.shape[0]
    ho, wo = out_size
    taps = kernel[0] * kernel[1]
    grid = _grid(offset, (h, w), kernel, stride, padding, dilation, dg,
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
    # Sample the input zero-padded (bottom/right) to powers of two: then the
    # grid of _grid_exact is exact (see the module docstring).  The padding
    # is zeros, which is what sampling outside reads anyway.
    hp, wp = _pow2(h), _pow2(w)
    grad_out = grad_out.contiguous()
    chunk_numel = min(chunk_numel, backward_chunk_numel(input))
    chunks = list(
        _chunks(n, dg, ho, cpg * taps * wo, chunk_numel, 'groups',
                torch.get_num_threads()))
    # chunks are disjoint in (image, group, rows); only ranges of rows
    # share input pixels: their input gradients (bands of rows) are added
    rows_split = chunks[0].r1 - chunks[0].r0 < ho
    grad_x = None
    if need_x:
        grad_x = torch.zeros_like(input) if rows_split else \
            torch.empty_like(input)
    grad_off = torch.empty_like(offset) if need_off else None
    grad_mask = torch.empty_like(mask) if need_mask else None
    grad_w = torch.zeros_like(weight) if need_w else None
    # Chunk-sized buffers allocated once per call and reused by every
    # chunk: allocating them per chunk lets glibc trim and re-grow the heap
    # between chunks, page-faulting the fresh pages each time.
    most = max(_numel(ck, cpg * taps * wo) for ck in chunks)
    g_cols_buf = input.new_empty(most)
    prod_buf = input.new_empty(most) if need_mask else None
    low = cpu_gemm_dtype(input)
    if low is not None:
        weight_low = weight.to(low)
        grad_out_low = grad_out.to(low)
        low_buf = input.new_empty(most, dtype=low)
    x_pad, x_pad_key = None, None
    for ck in chunks:
        v = _ChunkView(ck, input, offset, mask, weight, geom,
                       norm_size=(hp, wp))
        # one padded copy per block of images and groups, reused by its
        # row ranges
        key = (ck.b0, ck.b1, ck.g0, ck.g1)
        if key != x_pad_key:
            x_pad = None  # free the previous block's copy first
            # channels-last (one copy, padding included): PyTorch's CPU
            # grid_sample backward runs 5-15% faster on FaPN's P2-P4
            # layers (measured: speed.md)
            x_pad = torch.empty(v.x.shape[:2] + (hp, wp), dtype=v.x.dtype,
                                device=v.x.device,
                                memory_format=torch.channels_last)
            x_pad[..., :h, :w] = v.x
            x_pad[..., h:, :] = 0
            x_pad[..., :h, w:] = 0
            x_pad_key = key
        # the band of input rows this chunk samples (all rows unless the
        # rows are split)
        x_band = x_pad if v.hs == hp else x_pad[:, :, v.y0:v.y0 + v.hs]
        # the sampled columns (nb*gb, cpg, taps*rows, wo); the grid_sample
        # backward reads only its input and grid, so they may be
        # overwritten below
        cols = _sample(x_band, v.grid)
        go = [_out_block(grad_out, ck, b) for b in range(v.nb)]
        # d(loss)/d(masked columns), same layout
        g_cols = g_cols_buf[:cols.numel()].view(v.cols_shape)
        if low is not None:
            w_low = _weight_block(weight_low, dg, ck.g0, ck.g1)
            go_low = [_out_block(grad_out_low, ck, b) for b in range(v.nb)]
            tmp = low_buf[:cols.numel()].view(v.cols_shape)
            for b in range(v.nb):
                torch.mm(w_low.t(), go_low[b], out=tmp[b])
            g_cols.copy_(tmp)
        else:
            for b in range(v.nb):
                torch.mm(v.weight.t(), go[b], out=g_cols[b])
        g_cols = g_cols.view_as(cols)
        if need_mask:
            # sum over channels of a chunk-sized product: two operators
            # (each is a parallel region, which costs most on a loaded
            # machine) for one more chunk of memory
            gm = torch.mul(g_cols, cols,
                           out=prod_buf[:cols.numel()].view_as(cols)).sum(1)
            grad_mask.view(n, dg, taps, ho, wo)[
                ck.b0:ck.b1, ck.g0:ck.g1, :, ck.r0:ck.r1] = gm.view(
                    v.nb, v.gb, taps, v.rows, wo)
            del gm
        if need_w:
            masked = cols.mul_(v.mask).view(v.cols_shape)
            block = grad_w.view(c_out, dg * cpg * taps)[
                :, ck.g0 * cpg * taps:ck.g1 * cpg * taps]
            if low is not None:
                masked = low_buf[:cols.numel()].view(v.cols_shape).copy_(
                    masked)
                for b in range(v.nb):
                    block.add_(torch.mm(go_low[b], masked[b].t()))
            else:
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
                g_cols, x_band, v.grid, 0, 0, False, [need_x, need_off])
            del g_cols
            y1 = min(v.y0 + v.hs, h)
            if need_x and y1 > v.y0:
                gx = gx[..., :y1 - v.y0, :w].unflatten(0, (v.nb, v.gb))
                dst = grad_x.view(n, dg, cpg, h, w)[ck.b0:ck.b1, ck.g0:ck.g1,
                                                    :, v.y0:y1]
                if rows_split:
                    dst.add_(gx)
                else:
                    dst.copy_(gx)
            del gx
            if need_off:
                gg = gg.masked_fill_(v.outside, 0).view(
                    v.nb, v.gb, taps, v.rows, wo, 2)
                dst = grad_off.view(n, dg, taps, 2, ho, wo)[
                    ck.b0:ck.b1, ck.g0:ck.g1, :, :, ck.r0:ck.r1]
                # chain rule through the normalisation of _grid (the
                # rounding of the fraction passes the gradient straight)
                torch.mul(gg[..., 1], 2.0 / v.hs, out=dst[:, :, :, 0])
                torch.mul(gg[..., 0], 2.0 / wp, out=dst[:, :, :, 1])
            del gg
        del v  # before the next chunk allocates (see _forward)
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
    'backward_chunk_numel', 'cpu_gemm_dtype', 'ENV_CPU_GEMM',
    'MIN_CHUNK_NUMEL', 'MAX_CHUNK_BYTES', 'MAX_BACKWARD_CHUNK_BYTES',
    'GATHER_MIN_POSITIONS'
]

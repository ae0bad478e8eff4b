"""The PyTorch DCNv2 path equals mmcv's op where bilinear sampling has a
kink: sampling positions within a rounding error of an integer (float32 and
float64, output and all five gradients); and through each chunked backward
path (blocks of groups, blocks by ranges of rows, one group with two
threads), forced on tiny inputs by small chunk sizes."""
import contextlib

import pytest
import torch

from mmfapn.ops import mdcn_torch, modulated_deform_conv2d
from mmfapn.ops.mdcn_torch import modulated_deform_conv2d_torch

F64 = torch.float64
NAMES = ('output', 'input', 'offset', 'mask', 'weight', 'bias')


def _inputs(n, c, h, w, c_out, dg, stride=1, padding=1, dilation=1,
            noise=None, gap=0.0, spread=3.0, dtype=F64, seed=0):
    """Random inputs; with ``noise``, offsets are random integers in
    [-2, 2] plus noise of +-(gap..noise) px (uniform in magnitude), so
    every sampling position is within about ``noise`` of an integer."""
    g = torch.Generator().manual_seed(seed)
    ho = (h + 2 * padding - dilation * 2 - 1) // stride + 1
    wo = (w + 2 * padding - dilation * 2 - 1) // stride + 1
    x = torch.randn(n, c, h, w, generator=g, dtype=F64)
    shape = (n, 2 * dg * 9, ho, wo)
    if noise is None:
        offset = spread * torch.randn(shape, generator=g, dtype=F64)
    else:
        sign = 2 * torch.randint(0, 2, shape, generator=g).to(F64) - 1
        size = gap + (noise - gap) * torch.rand(shape, generator=g,
                                                dtype=F64)
        offset = torch.randint(-2, 3, shape, generator=g).to(F64) + \
            sign * size
    mask = torch.rand(n, dg * 9, ho, wo, generator=g, dtype=F64)
    weight = torch.randn(c_out, c, 3, 3, generator=g, dtype=F64)
    bias = torch.randn(c_out, generator=g, dtype=F64)
    return [t.to(dtype) for t in (x, offset, mask, weight, bias)]


def _run(impl, tensors, geom, dg, chunk_numel=None, reference=None):
    """Output and the gradients of all five inputs for a fixed random
    upstream gradient (``impl='reference'``: autograd through the direct
    definition ``reference``)."""
    stride, padding, dilation = geom
    leaves = [t.clone().requires_grad_() for t in tensors]
    if impl == 'reference':
        out = reference(*leaves, stride, padding, dilation, dg)
    elif chunk_numel is not None:
        pair = lambda v: (v, v)  # noqa: E731
        out = modulated_deform_conv2d_torch(*leaves, pair(stride),
                                            pair(padding), pair(dilation),
                                            dg, chunk_numel=chunk_numel)
    else:
        out = modulated_deform_conv2d(*leaves, stride, padding, dilation, dg,
                                      impl=impl)
    g = torch.Generator().manual_seed(1)
    out.backward(torch.randn(out.shape, generator=g, dtype=F64).to(out.dtype))
    return [out.detach()] + [t.grad for t in leaves]


def _near_integer_count(tensors, geom, tol):
    """Sampling positions (mmcv's arithmetic) within ``tol`` px of an
    integer but not on it."""
    x, offset = tensors[:2]
    stride, padding, dilation = geom
    n, _, ho, wo = offset.shape
    off = offset.view(n, -1, 9, 2, ho, wo)
    tap = torch.arange(3, dtype=offset.dtype) * dilation
    y = (torch.arange(ho, dtype=offset.dtype) * stride - padding).view(
        1, -1, 1) + tap.repeat_interleave(3).view(9, 1, 1)
    x_ = (torch.arange(wo, dtype=offset.dtype) * stride - padding).view(
        1, 1, -1) + tap.repeat(3).view(9, 1, 1)
    count = 0
    for pos in (off[:, :, :, 0] + y, off[:, :, :, 1] + x_):
        d = (pos - pos.round()).abs()
        count += int(((d > 0) & (d <= tol)).sum())
    return count


# (n, c, h, w, c_out, dg, stride, padding, dilation): the issue's
# reproduction (1x16x12x14, dg 2), power-of-two sizes, stride/dilation 2
KINK_CASES = [
    (1, 16, 12, 14, 16, 2, 1, 1, 1),
    (2, 16, 16, 8, 6, 4, 1, 1, 1),
    (1, 16, 13, 9, 6, 2, 2, 2, 2),
]


@pytest.mark.parametrize('case', KINK_CASES,
                         ids=lambda c: 'x'.join(map(str, c)))
@pytest.mark.parametrize('dtype, noise, gap, rel', [
    (torch.float32, 2e-5, 0.0, 2e-5),
    (torch.float32, 1e-6, 0.0, 2e-5),
    # float64 down to 1e-6 px: mmcv's CPU kernel floors positions in
    # float32 (floorf), wrong within float32 rounding of an integer
    (F64, 1e-5, 1e-6, 1e-12),
])
def test_positions_near_integers_equal_mmcv(case, dtype, noise, gap, rel,
                                           within_scale):
    """A float32 grid normalised directly put positions within ~1e-5 px of
    an integer in the neighbouring cell (offset gradients 735 off, of
    1309, in the issue's reproduction, the first case).  Every output and
    gradient equals mmcv's to float32 (float64) rounding, relative to the
    tensor's scale."""
    n, c, h, w, c_out, dg, s, p, d = case
    geom = (s, p, d)
    tensors = _inputs(n, c, h, w, c_out, dg, s, p, d, noise=noise, gap=gap,
                      dtype=dtype)
    # the case is a test of the kink: most positions lie within noise of an
    # integer (the others outside the image)
    assert _near_integer_count(tensors, geom, 1.5 * noise) > 500
    ref = _run('mmcv', tensors, geom, dg)
    got = _run('torch', tensors, geom, dg)
    within_scale(got, ref, rel)
    assert ref[2].abs().max() > 1  # offset gradients are not trivial


@pytest.mark.parametrize('case', KINK_CASES[:2],
                         ids=lambda c: 'x'.join(map(str, c)))
def test_float64_positions_within_1e13_of_integers(case, mdcn_reference,
                                                  within_scale):
    """Closer than float32 rounding, mmcv's CPU kernel is no reference in
    float64 (its floorf rounds 16 - 1e-9 up to 16 and then reads past the
    last row); the direct definition (tests/conftest.py, gradients by
    autograd: floor, then the cell's bilinear weights) is."""
    n, c, h, w, c_out, dg, s, p, d = case
    geom = (s, p, d)
    tensors = _inputs(n, c, h, w, c_out, dg, s, p, d, noise=1e-13)
    assert _near_integer_count(tensors, geom, 1.5e-13) > 500
    ref = _run('reference', tensors, geom, dg, reference=mdcn_reference)
    got = _run('torch', tensors, geom, dg)
    within_scale(got, ref, 1e-12)
    assert ref[2].abs().max() > 1


@contextlib.contextmanager
def _threads(count):
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _backward_plan(monkeypatch):
    """Record the chunks of every backward (``order='groups'``) call."""
    plans = []
    real = mdcn_torch._chunks

    def spy(*args, **kwargs):
        chunks = list(real(*args, **kwargs))
        if (args[5] if len(args) > 5 else kwargs.get('order')) == 'groups':
            plans.append([(c.b0, c.b1, c.g0, c.g1, c.r0, c.r1)
                          for c in chunks])
        return iter(chunks)

    monkeypatch.setattr(mdcn_torch, '_chunks', spy)
    return plans


# n=1, c=16, 9x11 map (out 9x11), 3x3: one output row of one group has
# (16 / dg) * 9 * 11 columns.  (name, dg, threads, chunk_numel, expected
# chunk shape: groups per chunk, rows per chunk (None: several ranges))
PATHS = [
    # 2 of 4 groups with all rows fit: blocks of 2 groups, no row split
    ('group-blocks', 4, 2, 2 * 4 * 99 * 9, 2, 9),
    # not even 2 groups with all rows fit: blocks of 2 groups (threads) by
    # ranges of 3 rows, input gradients accumulated
    ('row-splits', 4, 2, 2 * 4 * 99 * 3, 2, 3),
    # one group, two threads: one group by ranges of rows
    ('dg1-2-threads', 1, 2, 16 * 99 * 4, 1, 3),
    # one thread: single groups with all rows
    ('1-thread', 4, 1, 4 * 99 * 9, 1, 9),
]


@pytest.mark.parametrize('path', PATHS, ids=lambda p: p[0])
def test_chunked_backward_paths_equal_mmcv(path, monkeypatch):
    name, dg, threads, chunk, groups, rows = path
    geom = (1, 1, 1)
    tensors = _inputs(1, 16, 9, 11, 6, dg, spread=3.0)
    # a few positions exactly on and next to integers as well
    tensors[1][..., :3] = tensors[1][..., :3].round()
    ref = _run('mmcv', tensors, geom, dg)
    whole = _run('torch', tensors, geom, dg)
    plans = _backward_plan(monkeypatch)
    with _threads(threads):
        got = _run('torch-chunked', tensors, geom, dg, chunk_numel=chunk)
    assert len(plans) == 1
    plan = plans[0]
    assert {g1 - g0 for _, _, g0, g1, _, _ in plan} == {groups}
    assert max(r1 - r0 for *_, r0, r1 in plan) == rows
    # every (group, row) of the output is covered exactly once
    cover = torch.zeros(dg, 9, dtype=torch.int64)
    for _, _, g0, g1, r0, r1 in plan:
        cover[g0:g1, r0:r1] += 1
    assert bool((cover == 1).all())
    # the column buffers hold at most chunk_numel values
    assert all((g1 - g0) * (16 // dg) * 9 * 11 * (r1 - r0) <= chunk
               for _, _, g0, g1, r0, r1 in plan)
    for a, b, c, n in zip(got, ref, whole, NAMES):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10,
                                   msg=lambda m: f'{n} vs mmcv: {m}')
        torch.testing.assert_close(a, c, rtol=1e-12, atol=1e-12,
                                   msg=lambda m: f'{n} vs unchunked: {m}')


def test_default_chunk_is_capped_at_16_mib():
    """A quarter of the im2col, at most 16 MiB of the computing dtype
    (float32 for half inputs), at least MIN_CHUNK_NUMEL elements."""
    w = torch.empty(256, 256, 3, 3, device='meta')
    p2 = (128, 256)
    for dtype, itemsize in ((torch.float32, 4), (F64, 8),
                            (torch.bfloat16, 4), (torch.float16, 4)):
        x = torch.empty(1, 256, *p2, dtype=dtype, device='meta')
        chunk = mdcn_torch.default_chunk_numel(x, w, p2)
        assert chunk * itemsize == 16 << 20 == mdcn_torch.MAX_CHUNK_BYTES
    # P4 of 512x1024: a quarter of its 18 MiB im2col is below the cap
    x = torch.empty(1, 256, 32, 64, device='meta')
    assert mdcn_torch.default_chunk_numel(x, w, (32, 64)) == \
        256 * 9 * 32 * 64 // 4
    small = torch.zeros(1, 8, 6, 6)
    assert mdcn_torch.default_chunk_numel(
        small, torch.zeros(4, 8, 3, 3), (6, 6)) == mdcn_torch.MIN_CHUNK_NUMEL


def test_row_ranges_take_bands_of_input_rows(monkeypatch, within_scale):
    """With rows split, each chunk samples (and takes the gradient of) only
    the power-of-two band of input rows its positions reach; positions
    within 1e-5 px of integers keep mmcv's cells there too."""
    geom, dg = (1, 1, 1), 2
    tensors = _inputs(1, 8, 32, 8, 4, dg, noise=2e-5, dtype=torch.float32)
    bands = []
    real = mdcn_torch._grid_exact

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        bands.append(out[2:])
        return out

    monkeypatch.setattr(mdcn_torch, '_grid_exact', spy)
    with _threads(2):
        # 2 groups x 4 output rows per chunk: 8 row ranges
        got = _run('torch-chunked', tensors, geom, dg,
                   chunk_numel=2 * 4 * 9 * 8 * 4)
    assert len(bands) == 8
    # 4 rows, 3x3 taps and offsets of up to 2 px reach up to 12 rows:
    # bands of 16 (8 where the image edge clips them), not the 32 rows
    assert sorted(hs for _, hs in bands) == [8] * 2 + [16] * 6, bands
    monkeypatch.undo()
    within_scale(got, _run('mmcv', tensors, geom, dg), 2e-5)


@pytest.mark.parametrize('threads', [1, 2])
def test_backward_chunks_are_capped_at_4_mib(threads, monkeypatch,
                                            within_scale):
    """The backward builds at most MAX_BACKWARD_CHUNK_BYTES of columns at a
    time even where the forward runs in one piece, and still equals
    mmcv."""
    cap = mdcn_torch.backward_chunk_numel(torch.empty(0))
    assert cap * 4 == mdcn_torch.MAX_BACKWARD_CHUNK_BYTES == 4 << 20
    assert mdcn_torch.backward_chunk_numel(torch.empty(0, dtype=F64)) == \
        cap // 2
    geom, dg = (1, 1, 1), 2
    # 32 channels, 64x64 output: 1.18M columns, 1.11 times the cap
    tensors = _inputs(1, 32, 64, 64, 8, dg, dtype=torch.float32)
    plans = _backward_plan(monkeypatch)
    with _threads(threads):
        got = _run('torch-chunked', tensors, geom, dg, chunk_numel=10**9)
    unit_row = 16 * 9 * 64  # one output row of one group
    sizes = [(g1 - g0) * (r1 - r0) * unit_row
             for _, _, g0, g1, r0, r1 in plans[0]]
    assert len(sizes) == 2 and max(sizes) <= cap
    assert sum(sizes) == 32 * 9 * 64 * 64
    monkeypatch.undo()
    within_scale(got, _run('mmcv', tensors, geom, dg), 2e-5)

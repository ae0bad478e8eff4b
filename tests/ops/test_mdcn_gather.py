"""The CPU gather forward of the PyTorch deformable conv (``embedding_bag``
over a padded channels-last table, used for layers of at least
``GATHER_MIN_POSITIONS`` sampling positions): equal to mmcv's op (output
and all five gradients, float32 and float64, positions within 1e-5 px of
integers, outside the image, NaN), through every chunk shape, and chosen
by size only."""
import pytest
import torch

from mmfapn.ops import mdcn_torch, modulated_deform_conv2d
from mmfapn.ops.mdcn_torch import modulated_deform_conv2d_torch

F64 = torch.float64


@pytest.fixture
def gather(monkeypatch):
    """Every CPU forward gathers; returns the list of chunk sizes
    (images, rows, W_out, columns) ``_gather_columns`` built."""
    monkeypatch.setattr(mdcn_torch, 'GATHER_MIN_POSITIONS', 0)
    built = []
    real = mdcn_torch._gather_columns

    def spy(*args, **kwargs):
        cols = real(*args, **kwargs)
        built.append(tuple(cols.shape))
        return cols

    monkeypatch.setattr(mdcn_torch, '_gather_columns', spy)
    return built


def _inputs(n, c, h, w, c_out, dg, k=3, stride=1, padding=1, dilation=1,
            spread=3.0, noise=None, dtype=F64, seed=0):
    """Random inputs; with ``noise``, offsets are random integers in
    [-2, 2] plus up to +-noise px, so positions lie next to integers."""
    g = torch.Generator().manual_seed(seed)
    ho = (h + 2 * padding - dilation * (k - 1) - 1) // stride + 1
    wo = (w + 2 * padding - dilation * (k - 1) - 1) // stride + 1
    shape = (n, 2 * dg * k * k, ho, wo)
    x = torch.randn(n, c, h, w, generator=g, dtype=F64)
    if noise is None:
        offset = spread * torch.randn(shape, generator=g, dtype=F64)
    else:
        offset = torch.randint(-2, 3, shape, generator=g).to(F64) + \
            noise * (2 * torch.rand(shape, generator=g, dtype=F64) - 1)
    mask = torch.rand(n, dg * k * k, ho, wo, generator=g, dtype=F64)
    weight = torch.randn(c_out, c, k, k, generator=g, dtype=F64)
    bias = torch.randn(c_out, generator=g, dtype=F64)
    return [t.to(dtype) for t in (x, offset, mask, weight, bias)]


def _run(impl, tensors, geom, dg, chunk_numel=None, bias=True):
    stride, padding, dilation = geom
    leaves = [t.clone().requires_grad_() for t in tensors]
    args = leaves if bias else leaves[:4] + [None]
    if chunk_numel is None:
        out = modulated_deform_conv2d(*args, stride, padding, dilation, dg,
                                      impl=impl)
    else:
        pair = lambda v: (v, v)  # noqa: E731
        out = modulated_deform_conv2d_torch(*args, pair(stride),
                                            pair(padding), pair(dilation),
                                            dg, chunk_numel=chunk_numel)
    g = torch.Generator().manual_seed(1)
    out.backward(torch.randn(out.shape, generator=g, dtype=F64).to(out.dtype))
    grads = [t.grad for t in (leaves if bias else leaves[:4])]
    return [out.detach()] + grads


# (n, c, h, w, c_out, dg, k, stride, padding, dilation, bias)
CASES = [
    (2, 16, 12, 14, 8, 2, 3, 1, 1, 1, True),
    (1, 16, 13, 9, 6, 4, 3, 2, 2, 2, True),
    (1, 8, 10, 10, 4, 1, 1, 1, 0, 1, False),
    (1, 24, 7, 11, 5, 8, 3, 1, 1, 1, True),  # 3 channels per group
]


@pytest.mark.parametrize('case', CASES, ids=lambda c: 'x'.join(
    map(str, c[:-1])))
@pytest.mark.parametrize('dtype, rel', [(F64, 1e-12),
                                        (torch.float32, 2e-5)])
def test_gather_forward_equals_mmcv(case, dtype, rel, gather, within_scale):
    *shape, k, s, p, d, bias = case
    geom = (s, p, d)
    dg = shape[5]
    tensors = _inputs(*shape, k, s, p, d, dtype=dtype)
    got = _run('torch', tensors, geom, dg, bias=bias)
    assert gather, 'the forward did not gather'
    within_scale(got, _run('mmcv', tensors, geom, dg, bias=bias), rel)


@pytest.mark.parametrize('noise', [2e-5, 1e-6])
def test_gather_positions_near_integers_equal_mmcv(noise, gather,
                                                  within_scale):
    """Positions are one float32 rounding of mmcv's pixel-unit sum, so they
    floor into mmcv's cell even within 1e-6 px of an integer."""
    geom, dg = (1, 1, 1), 2
    tensors = _inputs(1, 16, 12, 14, 16, dg, noise=noise,
                      dtype=torch.float32)
    ref = _run('mmcv', tensors, geom, dg)
    got = _run('torch', tensors, geom, dg)
    assert gather
    within_scale(got, ref, 2e-5)
    assert ref[2].abs().max() > 1  # offset gradients are not trivial


def test_gather_non_finite_offsets_read_zeros_as_mmcv(gather):
    """NaN and infinite offsets put the position outside the image: mmcv
    reads zeros there, and so does the gather (the output stays
    finite)."""
    geom, dg = (1, 1, 1), 2
    x, offset, mask, weight, bias = _inputs(1, 8, 6, 7, 4, dg,
                                            dtype=torch.float32)
    offset[0, :5, 1, 2] = float('nan')
    offset[0, 5:9, 3, 3] = float('inf')
    offset[0, 9:12, 4, 0] = -float('inf')
    args = (x, offset, mask, weight, bias, 1, 1, 1, dg)
    with torch.no_grad():
        got = modulated_deform_conv2d(*args, impl='torch')
        ref = modulated_deform_conv2d(*args, impl='mmcv')
    assert gather
    assert bool(torch.isfinite(got).all())
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


# n=2, c=16, 9x11 map, 3x3, dg 4: a row of one group needs
# max(4, 24) * 9 * 11 = 2376 elements of the chunk budget.
# (name, chunk_numel, expected chunk shapes (images, rows, groups))
CHUNKS = [
    ('whole-images', 2 * 4 * 9 * 2376, {(2, 9, 4)}),
    ('row-ranges', 4 * 4 * 2376, {(1, 3, 4)}),
    ('group-blocks', 2 * 2376, {(1, 1, 2)}),
]


@pytest.mark.parametrize('chunk', CHUNKS, ids=lambda c: c[0])
def test_gather_chunks_equal_mmcv(chunk, gather, within_scale):
    name, chunk_numel, shapes = chunk
    geom, dg = (1, 1, 1), 4
    tensors = _inputs(2, 16, 9, 11, 6, dg)
    got = _run('torch-chunked', tensors, geom, dg, chunk_numel=chunk_numel)
    built = {(nb, rw // 11, cols // (9 * 4)) for nb, rw, cols in gather}
    assert built == shapes
    # the budget counts the columns and the index/weight temporaries
    # (4 channels per group, 24 temporaries per position)
    assert all(nb * rw * (cols // 4) * 24 <= chunk_numel
               for nb, rw, cols in gather)
    within_scale(got, _run('mmcv', tensors, geom, dg), 1e-12)


def test_gather_is_chosen_by_size(monkeypatch):
    """Layers of at least GATHER_MIN_POSITIONS sampling positions (images
    x groups x taps x output pixels) gather; smaller ones use
    grid_sample."""
    calls = []
    for name in ('_forward_gather', '_forward_grid'):
        real = getattr(mdcn_torch, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            calls.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(mdcn_torch, name, spy)
    assert mdcn_torch.GATHER_MIN_POSITIONS == 1 << 16
    # 1 image x 8 groups x 9 taps x size^2 output pixels: 69192
    # positions at 31, 64800 at 30
    for size, expected in ((31, '_forward_gather'), (30, '_forward_grid')):
        x, off, mask, w, b = _inputs(1, 16, size, size, 4, 8,
                                     dtype=torch.float32)
        with torch.no_grad():
            modulated_deform_conv2d(x, off, mask, w, b, 1, 1, 1, 8,
                                    impl='torch')
        assert calls[-1] == expected, (size, calls)


@pytest.mark.parametrize('chunk_numel', [None, 2 * 2376])
def test_gather_bfloat16_products_are_close_to_float32(chunk_numel, gather,
                                                       monkeypatch):
    """``MMFAPN_DCN_CPU_GEMM=bfloat16`` on the gather path: float32 output
    within bfloat16 rounding of the float32 one (whole and in group
    blocks)."""
    geom, dg = (1, 1, 1), 4
    tensors = _inputs(2, 16, 9, 11, 6, dg, dtype=torch.float32)
    impl = 'torch' if chunk_numel is None else 'torch-chunked'
    monkeypatch.delenv(mdcn_torch.ENV_CPU_GEMM, raising=False)
    ref = _run(impl, tensors, geom, dg, chunk_numel=chunk_numel)[0]
    monkeypatch.setenv(mdcn_torch.ENV_CPU_GEMM, 'bfloat16')
    got = _run(impl, tensors, geom, dg, chunk_numel=chunk_numel)[0]
    assert got.dtype == torch.float32
    err = ((got - ref).norm() / ref.norm()).item()
    assert 1e-5 < err < 1e-2, err

"""The PyTorch DCNv2 path against mmcv's compiled op (float64, forward and
every gradient), its memory chunking, dtypes, and the ``impl`` selection."""
import pytest
import torch
import torch.nn.functional as F

from mmfapn.ops import modulated_deform_conv2d
from mmfapn.ops import mdcn_library, mdcn_torch
from mmfapn.ops import modulated_deform_conv as mdc
from mmfapn.ops.mdcn_torch import modulated_deform_conv2d_torch

F64 = torch.float64


def _inputs(n, c, h, w, c_out, dg, stride, padding, dilation, spread=3.0,
            dtype=F64, seed=0, k=3):
    g = torch.Generator().manual_seed(seed)
    ho = (h + 2 * padding - dilation * (k - 1) - 1) // stride + 1
    wo = (w + 2 * padding - dilation * (k - 1) - 1) // stride + 1
    x = torch.randn(n, c, h, w, generator=g, dtype=F64)
    # offsets of several pixels push many samples partly or wholly outside
    # the image, where each bilinear neighbour must read zero
    offset = spread * torch.randn(n, 2 * dg * k * k, ho, wo, generator=g,
                                  dtype=F64)
    mask = torch.rand(n, dg * k * k, ho, wo, generator=g, dtype=F64)
    weight = torch.randn(c_out, c, k, k, generator=g, dtype=F64)
    bias = torch.randn(c_out, generator=g, dtype=F64)
    return [t.to(dtype) for t in (x, offset, mask, weight, bias)]


def _run(impl, tensors, stride, padding, dilation, dg, grad_seed=1,
         chunk_numel=None):
    """Output and the gradients of all five inputs for a fixed random
    upstream gradient."""
    leaves = [t.clone().requires_grad_() for t in tensors]
    if impl == 'torch-chunked':
        pair = lambda v: (v, v)  # noqa: E731
        out = modulated_deform_conv2d_torch(*leaves, pair(stride),
                                            pair(padding), pair(dilation),
                                            dg, chunk_numel=chunk_numel)
    else:
        out = modulated_deform_conv2d(*leaves, stride, padding, dilation, dg,
                                      impl=impl)
    g = torch.Generator().manual_seed(grad_seed)
    # drawn in float64 so every dtype sees the same upstream gradient
    out.backward(torch.randn(out.shape, generator=g, dtype=F64).to(out.dtype))
    return [out.detach()] + [t.grad for t in leaves]


NAMES = ('output', 'input', 'offset', 'mask', 'weight', 'bias')


# (n, c, h, w, c_out, dg, stride, padding, dilation, offset spread)
CASES = [
    (2, 16, 9, 11, 6, 1, 1, 1, 1, 3.0),
    (2, 16, 9, 11, 6, 8, 1, 1, 1, 3.0),
    (2, 16, 9, 11, 6, 8, 2, 1, 1, 3.0),
    (2, 16, 9, 11, 6, 1, 2, 1, 1, 3.0),
    (2, 16, 9, 11, 6, 8, 1, 2, 2, 3.0),
    (1, 16, 13, 7, 5, 1, 2, 2, 2, 3.0),
    (3, 16, 7, 10, 4, 8, 1, 0, 1, 3.0),
    # far outside: most taps sample entirely outside the image
    (2, 16, 9, 11, 6, 8, 1, 1, 1, 12.0),
]


@pytest.mark.parametrize('case', CASES, ids=lambda c: 'x'.join(map(str, c)))
def test_torch_path_equals_mmcv_forward_and_all_gradients(case):
    n, c, h, w, c_out, dg, s, p, d, spread = case
    tensors = _inputs(n, c, h, w, c_out, dg, s, p, d, spread)
    ref = _run('mmcv', tensors, s, p, d, dg)
    got = _run('torch', tensors, s, p, d, dg)
    for name, a, b in zip(NAMES, got, ref):
        assert a.shape == b.shape, name
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10,
                                   msg=lambda m: f'{name}: {m}')
    # the case is not trivial: outputs and offset gradients are non-zero
    assert ref[0].abs().max() > 1 and ref[2].abs().max() > 1e-3


@pytest.mark.parametrize('h, w', [(9, 11), (8, 16), (13, 7)])
def test_integer_offsets_match_mmcv_gradients(h, w):
    """Bilinear sampling has a kink at integer positions; the offset gradient
    there is one-sided.  Zero offsets (FaPN's initial state) and other
    integer offsets give mmcv's gradients exactly, including the taps that
    sit at exactly -1 in the zero padding (mmcv: no gradient there)."""
    tensors = _inputs(2, 16, h, w, 6, 8, 1, 1, 1)
    for offset in (torch.zeros_like(tensors[1]), tensors[1].round()):
        tensors[1] = offset
        ref = _run('mmcv', tensors, 1, 1, 1, 8)
        got = _run('torch', tensors, 1, 1, 1, 8)
        for name, a, b in zip(NAMES, got, ref):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10,
                                       msg=lambda m: f'{name}: {m}')


@pytest.mark.parametrize('chunk_numel', [1, 97, 600, 5000, 20000, 10**9])
def test_chunking_changes_nothing(chunk_numel, monkeypatch):
    """Chunks over batch, groups and output rows give the same numbers, and
    no chunk's column buffer exceeds the budget (one output row of one group
    of one image is the smallest chunk: 4 * 9 * 7 = 252 columns here)."""
    n, c, h, w, c_out, dg, s, p, d = 3, 16, 9, 7, 6, 4, 1, 1, 1
    tensors = _inputs(n, c, h, w, c_out, dg, s, p, d)
    ref = _run('mmcv', tensors, s, p, d, dg)
    sizes = []
    sample = mdcn_torch._sample

    def spy(x, grid):
        cols = sample(x, grid)
        sizes.append(cols.numel())
        return cols

    monkeypatch.setattr(mdcn_torch, '_sample', spy)
    got = _run('torch-chunked', tensors, s, p, d, dg,
               chunk_numel=chunk_numel)
    for name, a, b in zip(NAMES, got, ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10,
                                   msg=lambda m: f'{name}: {m}')
    im2col = n * c * 9 * h * w
    # forward + backward each build every column exactly once
    assert sum(sizes) == 2 * im2col
    assert max(sizes) <= max(chunk_numel, 252)
    if chunk_numel < im2col:
        assert len(sizes) > 2


def test_gradcheck_tiny():
    tensors = _inputs(1, 4, 4, 3, 2, 2, 1, 1, 1, spread=1.5, seed=3)
    leaves = [t.clone().requires_grad_() for t in tensors]

    def f(*args):
        return modulated_deform_conv2d(*args, 1, 1, 1, 2, impl='torch')

    assert torch.autograd.gradcheck(f, leaves, eps=1e-6, atol=1e-6)
    # chunked backward too (one row of one group per chunk)
    assert torch.autograd.gradcheck(
        lambda *a: modulated_deform_conv2d_torch(*a, (1, 1), (1, 1), (1, 1),
                                                 2, chunk_numel=1),
        leaves, eps=1e-6, atol=1e-6, fast_mode=True)


def test_zero_offsets_half_mask_is_half_a_plain_conv():
    """FaPN's initial state (zero offset/mask conv: offsets 0, mask 0.5)."""
    x, _, _, weight, bias = _inputs(2, 16, 9, 11, 6, 8, 1, 1, 1)
    offset = torch.zeros(2, 2 * 8 * 9, 9, 11, dtype=F64)
    mask = torch.full((2, 8 * 9, 9, 11), 0.5, dtype=F64)
    out = modulated_deform_conv2d(x, offset, mask, weight, bias, 1, 1, 1, 8,
                                  impl='torch')
    expected = 0.5 * F.conv2d(x, weight, padding=1) + bias.view(1, -1, 1, 1)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


def test_samples_beyond_one_pixel_outside_read_zero():
    x, offset, mask, weight, bias = _inputs(1, 16, 6, 5, 4, 8, 1, 1, 1)
    offset = torch.full_like(offset, 1e4)
    out = modulated_deform_conv2d(x, offset, mask, weight, bias, 1, 1, 1, 8,
                                  impl='torch')
    torch.testing.assert_close(out, bias.view(1, -1, 1, 1).expand_as(out))


@pytest.mark.parametrize('dtype, tol', [(torch.float32, 1e-5),
                                        (torch.bfloat16, 1e-2),
                                        (torch.float16, 2e-3)])
def test_lower_precision_dtypes(dtype, tol):
    """The reference is mmcv in float64 on the same inputs rounded to
    ``dtype``, so only the arithmetic precision is compared (half types are
    sampled in float32; a bfloat16 grid alone would misplace samples)."""
    tensors = [t.to(dtype) for t in
               _inputs(2, 16, 9, 11, 6, 8, 1, 1, 1, spread=2.0)]
    ref = _run('mmcv', [t.double() for t in tensors], 1, 1, 1, 8)
    got = _run('torch', tensors, 1, 1, 1, 8)
    assert all(t.dtype == dtype for t in got)
    for name, a, b in zip(NAMES, got, ref):
        # relative to the scale of each tensor
        err = (a.double() - b).abs().max() / b.abs().max()
        assert err < tol, f'{name}: relative error {err:.2e}'


def test_non_contiguous_inputs():
    x, offset, mask, weight, bias = _inputs(2, 16, 9, 11, 6, 8, 1, 1, 1)
    x_nc = x.transpose(2, 3).contiguous().transpose(2, 3)
    offset_nc = offset.to(memory_format=torch.channels_last)
    expected = modulated_deform_conv2d(x, offset, mask, weight, bias, 1, 1,
                                       1, 8, impl='mmcv')
    out = modulated_deform_conv2d(x_nc, offset_nc, mask, weight, bias, 1, 1,
                                  1, 8, impl='torch')
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)


def test_auto_selects_torch_on_cpu_and_env_overrides(monkeypatch):
    cpu = torch.device('cpu')
    monkeypatch.delenv(mdc.ENV_IMPL, raising=False)
    assert mdc.resolve_impl('auto', cpu) == 'torch'
    assert mdc.resolve_impl('mmcv', cpu) == 'mmcv'
    assert mdc.resolve_impl('torch', cpu) == 'torch'
    if mdc.mmcv_ops_available():
        assert mdc.resolve_impl('auto', torch.device('cuda')) == 'mmcv'
    monkeypatch.setattr(mdc, 'mmcv_ops_available', lambda: False)
    assert mdc.resolve_impl('auto', torch.device('cuda')) == 'torch'
    monkeypatch.undo()
    monkeypatch.setenv(mdc.ENV_IMPL, 'mmcv')
    assert mdc.resolve_impl('auto', cpu) == 'mmcv'
    # an explicit choice wins over the environment
    assert mdc.resolve_impl('torch', cpu) == 'torch'
    monkeypatch.setenv(mdc.ENV_IMPL, 'cudnn')
    with pytest.raises(ValueError,
                       match=r"environment variable MMFAPN_DCN_IMPL must be "
                       r"one of \('auto', 'mmcv', 'torch'\), got 'cudnn'"):
        mdc.resolve_impl('auto', cpu)


def test_env_switch_routes_calls(monkeypatch):
    """MMFAPN_DCN_IMPL=mmcv sends 'auto' calls to mmcv's op."""
    calls = []
    real = mdcn_library.mdcn_forward_mmcv

    def spy(*args):
        calls.append('mmcv')
        return real(*args)

    monkeypatch.setattr(mdcn_library, 'mdcn_forward_mmcv', spy)
    args = _inputs(1, 16, 6, 5, 4, 8, 1, 1, 1)
    monkeypatch.setenv(mdc.ENV_IMPL, 'mmcv')
    modulated_deform_conv2d(*args, 1, 1, 1, 8)
    assert calls == ['mmcv']
    monkeypatch.setenv(mdc.ENV_IMPL, 'torch')
    modulated_deform_conv2d(*args, 1, 1, 1, 8)
    monkeypatch.delenv(mdc.ENV_IMPL)
    modulated_deform_conv2d(*args, 1, 1, 1, 8)
    assert calls == ['mmcv']


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.parametrize('case', CASES[:5],
                         ids=lambda c: 'x'.join(map(str, c)))
def test_torch_path_equals_mmcv_on_cuda(case):
    n, c, h, w, c_out, dg, s, p, d, spread = case
    tensors = [t.cuda() for t in _inputs(n, c, h, w, c_out, dg, s, p, d,
                                         spread)]
    ref = _run('mmcv', tensors, s, p, d, dg)
    got = _run('torch', tensors, s, p, d, dg)
    for name, a, b in zip(NAMES, got, ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9,
                                   msg=lambda m: f'{name}: {m}')
    assert mdc.resolve_impl('auto', tensors[0].device) == 'mmcv'


def test_one_by_one_output_of_one_image_leaves_bias_alone():
    """A 1x1 output for a batch of one has the bias's shape: the output
    must still be a new tensor (it used to be the bias itself, accumulated
    into in place, which the custom op's aliasing check refuses)."""
    from mmfapn.ops.modulated_deform_conv import modulated_deform_conv2d
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 16, 1, 1, generator=g)
    offset = torch.randn(1, 2 * 2 * 9, 1, 1, generator=g)
    mask = torch.rand(1, 2 * 9, 1, 1, generator=g)
    weight = torch.randn(16, 16, 3, 3, generator=g)
    bias = torch.randn(16, generator=g)
    kept = bias.clone()
    with torch.no_grad():
        out = modulated_deform_conv2d(x, offset, mask, weight, bias, 1, 1, 1,
                                      2, impl='torch')
        ref = modulated_deform_conv2d(x, offset, mask, weight, bias, 1, 1, 1,
                                      2, impl='mmcv')
    assert torch.equal(bias, kept)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)

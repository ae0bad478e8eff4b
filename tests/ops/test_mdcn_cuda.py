"""CUDA: the PyTorch DCNv2 path (``impl='torch'``) against mmcv's CUDA op
(``impl='mmcv'``) and against torchvision's CUDA ``deform_conv2d`` (same
DCNv2 arithmetic and offset layout; the reference where mmcv's CUDA ops are
not built), output and the gradients of input, offset, mask, weight and
bias, in float32 and float64, deform_groups 1 and 8, stride 2 and dilation
2, random offsets of several pixels.  Run by ``make gpu-check``; skipped
without CUDA.

Tolerances: float64 1e-9 (both sides differ only in summation order;
mmcv's and torchvision's backward accumulate with atomics).  float32: each
tensor's largest error within 1e-4 of its largest value, TF32 off (with
TF32 the matmuls keep 10 mantissa bits and the two paths differ by ~1e-3).
"""
import pytest
import torch

from mmfapn.ops import mmcv_ops_available, modulated_deform_conv2d

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason='needs a CUDA device (torch.cuda.is_available() is False)')

F64 = torch.float64
NAMES = ('output', 'input', 'offset', 'mask', 'weight', 'bias')
TOL = {torch.float64: 1e-9, torch.float32: 1e-4}
# (n, c, h, w, c_out, deform_groups, stride, padding, dilation)
GEOMETRIES = [
    (2, 16, 13, 17, 12, 1, 1, 1, 1),
    (2, 16, 13, 17, 12, 8, 1, 1, 1),
    (2, 16, 13, 17, 12, 1, 2, 1, 1),
    (2, 16, 13, 17, 12, 8, 2, 1, 1),
    (2, 16, 13, 17, 12, 1, 1, 2, 2),
    (2, 16, 13, 17, 12, 8, 1, 2, 2),
    (1, 16, 12, 15, 8, 8, 2, 2, 2),
]
DTYPES = [torch.float32, torch.float64]


@pytest.fixture(autouse=True)
def no_tf32():
    saved = (torch.backends.cuda.matmul.allow_tf32,
             torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    yield
    (torch.backends.cuda.matmul.allow_tf32,
     torch.backends.cudnn.allow_tf32) = saved


def _mmcv_cuda_error():
    """None if mmcv's DCN runs on CUDA here, else why not."""
    if not mmcv_ops_available():
        return "mmcv's compiled ops are missing (mmcv._ext)"
    try:
        z = torch.zeros(1, 1, 3, 3, device='cuda')
        modulated_deform_conv2d(z, torch.zeros(1, 18, 3, 3, device='cuda'),
                                torch.ones(1, 9, 3, 3, device='cuda'),
                                torch.zeros(1, 1, 3, 3, device='cuda'), None,
                                1, 1, 1, 1, impl='mmcv')
        torch.cuda.synchronize()
    except RuntimeError as e:
        return f'mmcv has no CUDA kernel for its DCN: {str(e)[:200]}'
    return None


def _inputs(n, c, h, w, c_out, dg, stride, padding, dilation, dtype,
            spread=3.0, seed=0):
    """Drawn in float64 on the CPU (the same values for every dtype), with
    offsets of several pixels: many samples fall partly or wholly outside
    the image, and mixing up dy/dx, taps or groups changes every output."""
    g = torch.Generator().manual_seed(seed)
    ho = (h + 2 * padding - dilation * 2 - 1) // stride + 1
    wo = (w + 2 * padding - dilation * 2 - 1) // stride + 1
    x = torch.randn(n, c, h, w, generator=g, dtype=F64)
    offset = spread * torch.randn(n, 2 * dg * 9, ho, wo, generator=g,
                                  dtype=F64)
    mask = torch.rand(n, dg * 9, ho, wo, generator=g, dtype=F64)
    weight = torch.randn(c_out, c, 3, 3, generator=g, dtype=F64) / 12
    bias = torch.randn(c_out, generator=g, dtype=F64)
    return [t.to('cuda', dtype) for t in (x, offset, mask, weight, bias)]


def _run(fn, tensors, seed=1):
    """Output and the gradients of all five inputs for a fixed random
    upstream gradient."""
    leaves = [t.clone().requires_grad_() for t in tensors]
    out = fn(*leaves)
    g = torch.Generator().manual_seed(seed)
    grad = torch.randn(out.shape, generator=g, dtype=F64).to(out)
    grads = torch.autograd.grad(out, leaves, grad)
    return [out.detach()] + list(grads)


def _compare(got, ref, dtype):
    tol = TOL[dtype]
    for name, a, b in zip(NAMES, got, ref):
        assert a.dtype == dtype and a.shape == b.shape, name
        assert torch.isfinite(a).all(), f'{name}: non-finite values'
        scale = b.abs().max().item()
        assert scale > 0, f'{name}: the reference is all zeros'
        err = (a - b).abs().max().item()
        assert err <= tol * scale, (
            f'{name}: largest error {err:.3e} > {tol:g} x {scale:.3e}')


def _torch_path(s, p, d, dg):
    return lambda x, o, m, w, b: modulated_deform_conv2d(
        x, o, m, w, b, s, p, d, dg, impl='torch')


def _mmcv(s, p, d, dg):
    return lambda x, o, m, w, b: modulated_deform_conv2d(
        x, o, m, w, b, s, p, d, dg, impl='mmcv')


def _torchvision(s, p, d):
    tv = pytest.importorskip('torchvision.ops')
    return lambda x, o, m, w, b: tv.deform_conv2d(
        x, o, w, b, stride=s, padding=p, dilation=d, mask=m)


def _id(case):
    n, c, h, w, co, dg, s, p, d = case
    return f'dg{dg}-s{s}-p{p}-d{d}'


@pytest.mark.parametrize('dtype', DTYPES, ids=str)
@pytest.mark.parametrize('case', GEOMETRIES, ids=_id)
def test_torch_path_equals_mmcv_cuda(case, dtype):
    why = _mmcv_cuda_error()
    if why:
        pytest.skip(why)
    *shape, dg, s, p, d = case
    tensors = _inputs(*shape, dg, s, p, d, dtype)
    _compare(_run(_torch_path(s, p, d, dg), tensors),
             _run(_mmcv(s, p, d, dg), tensors), dtype)


@pytest.mark.parametrize('dtype', DTYPES, ids=str)
@pytest.mark.parametrize('case', GEOMETRIES, ids=_id)
def test_torch_path_equals_torchvision_cuda(case, dtype):
    """torchvision has no offset-group/deform-group distinction: its
    ``offset_groups`` is read from the offset's channels, as mmcv's."""
    *shape, dg, s, p, d = case
    tensors = _inputs(*shape, dg, s, p, d, dtype)
    _compare(_run(_torch_path(s, p, d, dg), tensors),
             _run(_torchvision(s, p, d), tensors), dtype)


def test_cuda_equals_cpu_float64():
    """The PyTorch path gives the same numbers on CUDA as on the CPU."""
    tensors = _inputs(2, 16, 13, 17, 12, 8, 2, 1, 1, F64)
    fn = _torch_path(2, 1, 1, 8)
    got = _run(fn, tensors)
    ref = _run(fn, [t.cpu() for t in tensors])
    _compare([t.cpu() for t in got], ref, F64)


def test_fapn_layer_shape_float32():
    """At a FaPN layer's size (C = 256, deform_groups 8, 3x3, a 48x96 map:
    the PyTorch path's columns are chunked), against mmcv or, without its
    CUDA ops, torchvision."""
    tensors = _inputs(1, 256, 48, 96, 256, 8, 1, 1, 1, torch.float32,
                      spread=2.0)
    ref_fn = (_mmcv(1, 1, 1, 8) if _mmcv_cuda_error() is None else
              _torchvision(1, 1, 1))
    _compare(_run(_torch_path(1, 1, 1, 8), tensors), _run(ref_fn, tensors),
             torch.float32)


def test_auto_picks_mmcv_on_cuda_when_its_kernels_exist():
    from mmfapn.ops.modulated_deform_conv import ENV_IMPL, resolve_impl
    import os
    if os.environ.get(ENV_IMPL):
        pytest.skip(f'{ENV_IMPL} is set')
    expected = 'mmcv' if mmcv_ops_available() else 'torch'
    assert resolve_impl('auto', torch.device('cuda')) == expected

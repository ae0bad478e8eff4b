"""Opt-in bfloat16 matrix products of the PyTorch deformable conv on CPU
(``MMFAPN_DCN_CPU_GEMM=bfloat16``): close to float32 (bfloat16 rounding of
the products' inputs and results), float32 outputs, every chunking path;
off by default, only for float32 CPU tensors, and a bad value is one
clear error."""
import pytest
import torch

from mmfapn.ops import modulated_deform_conv2d
from mmfapn.ops import mdcn_torch
from mmfapn.ops.mdcn_library import mdcn_apply

ENV = mdcn_torch.ENV_CPU_GEMM


def _inputs(n, c, h, w, dg, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=g, dtype=dtype)
    off = 2 * torch.randn(n, 2 * dg * 9, h, w, generator=g, dtype=dtype)
    mask = torch.rand(n, dg * 9, h, w, generator=g, dtype=dtype)
    weight = torch.randn(c, c, 3, 3, generator=g, dtype=dtype) / (c * 9)**.5
    bias = torch.randn(c, generator=g, dtype=dtype)
    return [t.requires_grad_() for t in (x, off, mask, weight, bias)]


def _run(tensors, dg, chunk_numel=None):
    for t in tensors:
        t.grad = None
    x, off, mask, weight, bias = tensors
    out = mdcn_apply(x, off, mask, weight, bias, (1, 1), (1, 1), (1, 1), dg,
                     'torch', chunk_numel)
    g = torch.Generator().manual_seed(1)
    out.backward(torch.randn(out.shape, generator=g, dtype=out.dtype))
    return [out.detach()] + [t.grad.clone() for t in tensors]


# (n, c, h, w, dg, chunk_numel): whole images; row ranges with all groups
# (forward) and group blocks by row ranges with accumulated input
# gradients (backward); blocks of groups of one row (forward accumulates)
CASES = [(2, 32, 9, 11, 4, None), (1, 64, 20, 24, 8, 5000),
         (1, 32, 6, 40, 4, 300)]


@pytest.mark.parametrize('case', CASES, ids=lambda c: f'chunk{c[-1]}')
def test_bfloat16_products_are_close_to_float32(case, monkeypatch):
    *shape, dg, chunk = case
    tensors = _inputs(*shape, dg)
    monkeypatch.delenv(ENV, raising=False)
    ref = _run(tensors, dg, chunk)
    monkeypatch.setenv(ENV, 'bfloat16')
    got = _run(tensors, dg, chunk)
    for name, a, b in zip(('out', 'x', 'offset', 'mask', 'weight'), got,
                          ref):
        assert a.dtype == torch.float32, name
        err = ((a - b).norm() / b.norm()).item()
        # bfloat16 keeps 8 bits: relative rounding 2**-9 per value
        assert 1e-5 < err < 1e-2, (name, err)
    # the bias gradient is a sum of the output gradient: no product
    assert torch.equal(got[5], ref[5])


def test_default_and_float32_setting_are_exactly_float32(monkeypatch):
    tensors = _inputs(1, 32, 9, 11, 4)
    monkeypatch.delenv(ENV, raising=False)
    ref = _run(tensors, 4, 600)
    monkeypatch.setenv(ENV, 'float32')
    for a, b in zip(_run(tensors, 4, 600), ref):
        assert torch.equal(a, b)


def test_float64_ignores_the_setting(monkeypatch):
    tensors = _inputs(1, 16, 7, 9, 2, dtype=torch.float64)
    monkeypatch.delenv(ENV, raising=False)
    ref = _run(tensors, 2)
    monkeypatch.setenv(ENV, 'bfloat16')
    assert mdcn_torch.cpu_gemm_dtype(tensors[0]) is None
    for a, b in zip(_run(tensors, 2), ref):
        assert torch.equal(a, b)


def test_bad_value_is_one_clear_error(monkeypatch):
    monkeypatch.setenv(ENV, 'fp8')
    x, off, mask, weight, bias = [t.detach() for t in _inputs(1, 8, 5, 5, 1)]
    with pytest.raises(ValueError) as info:
        modulated_deform_conv2d(x, off, mask, weight, bias, 1, 1, 1, 1,
                                impl='torch')
    assert str(info.value) == (
        "environment variable MMFAPN_DCN_CPU_GEMM must be 'float32' or "
        "'bfloat16', got 'fp8'")

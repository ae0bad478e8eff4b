import subprocess
import sys

import pytest
import torch
from mmcv.ops import ModulatedDeformConv2d

from mmfapn.ops import modulated_deform_conv2d


def test_mmcv_ops_are_compiled():
    import mmcv._ext  # noqa: F401  (fails if mmcv was built without ops)


@pytest.mark.parametrize('stride, padding, dilation, dg', [
    (1, 1, 1, 1), (1, 1, 1, 2), (2, 1, 1, 2), (1, 2, 2, 4), (1, 0, 1, 1)])
def test_mmcv_cpu_matches_independent_reference(stride, padding, dilation,
                                                dg, mdcn_reference):
    """Offset layout: (dy, dx) interleaved per tap, group-major."""
    torch.manual_seed(0)
    layer = ModulatedDeformConv2d(8, 6, 3, stride=stride, padding=padding,
                                  dilation=dilation, deform_groups=dg).double()
    torch.nn.init.normal_(layer.bias)
    x = torch.randn(2, 8, 9, 11, dtype=torch.float64)
    ho = (9 + 2 * padding - dilation * 2 - 1) // stride + 1
    wo = (11 + 2 * padding - dilation * 2 - 1) // stride + 1
    # large, distinct offsets: mixing up dy/dx, taps or groups changes the
    # result; some samples fall outside the image (zero padding)
    offset = 2.5 * torch.randn(2, 2 * dg * 9, ho, wo, dtype=torch.float64)
    mask = torch.rand(2, dg * 9, ho, wo, dtype=torch.float64)
    got = layer(x, offset, mask)
    expected = mdcn_reference(x, offset, mask, layer.weight, layer.bias,
                              stride, padding, dilation, dg)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
    for impl in ('mmcv', 'torch'):
        torch.testing.assert_close(
            modulated_deform_conv2d(x, offset, mask, layer.weight, layer.bias,
                                    stride, padding, dilation, dg, impl=impl),
            expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize('impl', ['mmcv', 'torch'])
def test_offset_channel_order_is_dy_then_dx(impl):
    """A single tap shifted by dy=+1 reads the pixel one row below."""
    x = torch.arange(25, dtype=torch.float64).view(1, 1, 5, 5)
    weight = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
    weight[0, 0, 1, 1] = 1  # centre tap only (k = 4)
    offset = torch.zeros(1, 18, 5, 5, dtype=torch.float64)
    mask = torch.ones(1, 9, 5, 5, dtype=torch.float64)
    offset[:, 2 * 4] = 1  # dy of the centre tap
    out = modulated_deform_conv2d(x, offset, mask, weight, None, 1, 1, 1, 1,
                                  impl=impl)
    torch.testing.assert_close(out[0, 0, :4], x[0, 0, 1:])
    offset[:, 2 * 4], offset[:, 2 * 4 + 1] = 0, 1  # dx
    out = modulated_deform_conv2d(x, offset, mask, weight, None, 1, 1, 1, 1,
                                  impl=impl)
    torch.testing.assert_close(out[0, 0, :, :4], x[0, 0, :, 1:])


def _args(**over):
    args = dict(input=torch.randn(1, 8, 6, 6), offset=torch.zeros(1, 36, 6, 6),
                mask=torch.ones(1, 18, 6, 6), weight=torch.randn(4, 8, 3, 3),
                bias=None, stride=1, padding=1, dilation=1, deform_groups=2)
    args.update(over)
    return args


@pytest.mark.parametrize('over, exc, pattern', [
    (dict(offset=torch.zeros(1, 36, 5, 6)), ValueError,
     r'offset must have shape \(1, 36, 6, 6\).*got \(1, 36, 5, 6\)'),
    (dict(offset=torch.zeros(1, 18, 6, 6)), ValueError,
     r'offset must have shape \(1, 36, 6, 6\)'),
    (dict(mask=torch.ones(2, 18, 6, 6)), ValueError,
     r'mask must have shape \(1, 18, 6, 6\)'),
    (dict(deform_groups=3, offset=torch.zeros(1, 54, 6, 6),
          mask=torch.ones(1, 27, 6, 6)), ValueError,
     r'input channels \(8\) are not divisible by deform_groups=3'),
    (dict(mask=torch.ones(1, 18, 6, 6, dtype=torch.float64)), TypeError,
     r'mask dtype torch.float64 differs from input dtype torch.float32'),
    (dict(input=torch.randn(8, 6, 6)), ValueError, r'input must be 4-D'),
    (dict(input=torch.ones(1, 8, 6, 6, dtype=torch.int64),
          offset=torch.zeros(1, 36, 6, 6, dtype=torch.int64),
          mask=torch.ones(1, 18, 6, 6, dtype=torch.int64),
          weight=torch.ones(4, 8, 3, 3, dtype=torch.int64)), TypeError,
     r'input must be a floating point tensor, got dtype torch.int64'),
    (dict(bias=torch.zeros(5)), ValueError, r'bias must have shape \(4,\)'),
    (dict(offset=torch.zeros(1, 36, 6, 6, device='meta')), ValueError,
     r'offset is on meta but input is on cpu'),
    (dict(weight=torch.randn(4, 3, 3, 3)), ValueError,
     r'weight expects 3 per group'),
])
def test_bad_inputs_raise_before_the_kernel(over, exc, pattern):
    with pytest.raises(exc, match=pattern):
        modulated_deform_conv2d(**_args(**over))


def test_unknown_impl():
    with pytest.raises(ValueError, match=r"impl must be one of .*'cuda'"):
        modulated_deform_conv2d(**_args(), impl='cuda')


def test_wrong_offset_size_does_not_abort_the_process():
    """mmcv's CPU kernel alone writes out of bounds here and aborts
    (``free(): invalid pointer``); the check must run first, for every
    implementation.  A subprocess, so that a regression aborts only it."""
    code = ('import torch; from mmfapn.ops import modulated_deform_conv2d\n'
            "for impl in ('mmcv', 'torch', 'auto'):\n"
            '    try:\n'
            '        modulated_deform_conv2d(torch.randn(1,8,6,6), '
            'torch.zeros(1,18,3,3), torch.ones(1,9,3,3), '
            'torch.randn(4,8,3,3), None, 1, 1, 1, 1, impl=impl)\n'
            '    except ValueError as e:\n'
            '        print(impl, "ValueError:", e)\n')
    res = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 3, res.stdout
    for impl, line in zip(('mmcv', 'torch', 'auto'), lines):
        assert line.startswith(
            f'{impl} ValueError: modulated_deform_conv2d: offset must have '
            'shape (1, 18, 6, 6)'), line

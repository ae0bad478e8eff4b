"""flow_warp: the one warp of AlignFA/AlignCM (pixel units, exact identity
at zero flow, explicit align_corners)."""
import pytest
import torch
import torch.nn.functional as F

from mmfapn.models.layers import flow_warp
from mmfapn.ops import modulated_deform_conv2d


def _x(n=2, c=3, h=7, w=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, h, w, generator=g, dtype=torch.float64)


@pytest.mark.parametrize('align_corners', [False, True])
@pytest.mark.parametrize('padding_mode', ['zeros', 'border'])
@pytest.mark.parametrize('size', [(7, 10), (1, 1), (13, 5)])
def test_zero_flow_is_exact_identity(align_corners, padding_mode, size):
    for dtype in (torch.float32, torch.float64):
        x = _x(h=size[0], w=size[1]).to(dtype)
        out = flow_warp(x, x.new_zeros(2, 2, *size), align_corners,
                        padding_mode)
        assert out.dtype == dtype
        assert torch.equal(out, x)


def test_unit_flow_shifts_by_one_pixel():
    x = _x()
    ones = torch.ones(2, 1, 7, 10, dtype=torch.float64)
    dx = torch.cat([ones, 0 * ones], 1)  # flow (+1, 0): sample x[j + 1]
    out = flow_warp(x, dx)
    assert torch.equal(out[..., :-1], x[..., 1:])
    assert torch.equal(out[..., -1], torch.zeros_like(x[..., -1]))
    out = flow_warp(x, dx, padding_mode='border')
    assert torch.equal(out[..., -1], x[..., -1])
    dy = torch.cat([0 * ones, -ones], 1)  # flow (0, -1): sample x[i - 1]
    out = flow_warp(x, dy)
    assert torch.equal(out[:, :, 1:], x[:, :, :-1])
    assert torch.equal(out[:, :, 0], torch.zeros_like(x[:, :, 0]))
    half = torch.cat([0.5 * ones, 0 * ones], 1)
    torch.testing.assert_close(flow_warp(x, half)[..., :-1],
                               0.5 * (x[..., :-1] + x[..., 1:]))


@pytest.mark.parametrize('impl', ['torch', 'mmcv'])
def test_matches_unit_1x1_deformable_conv(impl):
    """A flow warp is a 1x1 modulated deformable conv with one deformable
    group, identity weight and mask 1; DCN offsets are (dy, dx)."""
    x = _x(c=4)
    g = torch.Generator().manual_seed(1)
    # large enough to leave the map (zero padding on both sides)
    flow = 3 * torch.randn(2, 2, 7, 10, generator=g, dtype=torch.float64)
    weight = torch.eye(4, dtype=torch.float64).view(4, 4, 1, 1)
    mask = torch.ones(2, 1, 7, 10, dtype=torch.float64)
    expected = modulated_deform_conv2d(
        x, flow[:, [1, 0]].contiguous(), mask, weight, impl=impl)
    torch.testing.assert_close(flow_warp(x, flow), expected, rtol=0,
                               atol=1e-12)


@pytest.mark.parametrize('align_corners', [False, True])
@pytest.mark.parametrize('padding_mode', ['zeros', 'border'])
@pytest.mark.parametrize('out_size', [(7, 10), (12, 19), (3, 4)])
def test_matches_grid_sample(align_corners, padding_mode, out_size):
    """Against grid_sample with the flow turned into normalised coordinates
    by hand (output pixels -> input pixels -> [-1, 1])."""
    x = _x()
    h_in, w_in = x.shape[-2:]
    h, w = out_size
    g = torch.Generator().manual_seed(2)
    flow = 2 * torch.randn(2, 2, h, w, generator=g, dtype=torch.float64)
    if align_corners:
        sy, sx = (h_in - 1) / (h - 1), (w_in - 1) / (w - 1)
        by = torch.arange(h, dtype=torch.float64) * sy
        bx = torch.arange(w, dtype=torch.float64) * sx
    else:
        sy, sx = h_in / h, w_in / w
        by = (torch.arange(h, dtype=torch.float64) + 0.5) * sy - 0.5
        bx = (torch.arange(w, dtype=torch.float64) + 0.5) * sx - 0.5
    py = by.view(1, h, 1) + flow[:, 1] * sy
    px = bx.view(1, 1, w) + flow[:, 0] * sx
    if align_corners:
        gy, gx = 2 * py / (h_in - 1) - 1, 2 * px / (w_in - 1) - 1
    else:
        gy, gx = (2 * py + 1) / h_in - 1, (2 * px + 1) / w_in - 1
    grid = torch.stack([gx, gy], dim=-1)
    expected = F.grid_sample(x, grid, mode='bilinear',
                             padding_mode=padding_mode,
                             align_corners=align_corners)
    got = flow_warp(x, flow, align_corners, padding_mode)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize('align_corners', [False, True])
def test_zero_flow_resampling_is_bilinear_interpolate(align_corners):
    x = _x(h=3, w=3)
    for size in [(7, 10), (2, 5)]:
        got = flow_warp(x, x.new_zeros(2, 2, *size), align_corners,
                        padding_mode='border')
        expected = F.interpolate(x, size=size, mode='bilinear',
                                 align_corners=align_corners)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


def test_gradients_match_finite_differences():
    x = _x(n=1, c=2, h=4, w=5).requires_grad_()
    g = torch.Generator().manual_seed(3)
    # keep away from integer positions (bilinear kinks)
    flow = (0.3 + 0.4 * torch.rand(1, 2, 4, 5, generator=g,
                                   dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a, b: flow_warp(a, b, padding_mode='zeros'), (x, flow))
    small = _x(n=1, c=2, h=2, w=3).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a, b: flow_warp(a, b, align_corners=True,
                               padding_mode='border'), (small, flow))


def test_bad_inputs():
    x = _x()
    with pytest.raises(ValueError, match=r'flow must be \(N=2, 2, H, W\)'):
        flow_warp(x, x.new_zeros(2, 3, 7, 10))
    with pytest.raises(ValueError, match=r'flow must be \(N=2'):
        flow_warp(x, x.new_zeros(1, 2, 7, 10))
    with pytest.raises(ValueError, match=r'x must be \(N, C, H, W\)'):
        flow_warp(x[0], x.new_zeros(2, 2, 7, 10))
    with pytest.raises(ValueError, match="padding_mode.*'reflection'"):
        flow_warp(x, x.new_zeros(2, 2, 7, 10), padding_mode='reflection')
    with pytest.raises(TypeError, match='align_corners must be a bool'):
        flow_warp(x, x.new_zeros(2, 2, 7, 10), align_corners='yes')
    with pytest.raises(TypeError, match='must be Tensors'):
        flow_warp(x.numpy(), x.new_zeros(2, 2, 7, 10))

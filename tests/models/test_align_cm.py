"""AlignCM (AlignSeg §3.3): pooled K x K context warped to every pixel by
the shared flow_warp, then fused with a local feature."""
import pytest
import torch
import torch.nn.functional as F

from mmfapn.models.layers import AlignCM, flow_warp


def _x(c=16, h=9, w=13, n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, h, w, generator=g, dtype=torch.float64)


def test_registered_for_mmseg_with_c5_param_count(mmseg_scope, count_params):
    cm = mmseg_scope.build(dict(type='AlignCM', in_channels=2048,
                                channels=256))
    assert type(cm) is AlignCM and cm.bin_size == 3
    assert cm.out_channels == 512
    local = 2048 * 256 * 9 + 2 * 256      # 3x3 conv (no bias) + BN
    context = 2048 * 256 + 2 * 256        # 1x1 conv + BN
    flow = 512 * 256 + 2 * 256 + 256 * 2 * 9
    assert count_params(cm.local_conv) == local
    assert count_params(cm.context_conv) == context
    assert count_params(cm.flow_head) == flow
    assert count_params(cm) == local + context + flow == 5_380_096


@pytest.mark.parametrize('bin_size', [1, 2, 3, 6])
@pytest.mark.parametrize('fusion', ['concat', 'sum'])
def test_shapes_on_odd_sizes(bin_size, fusion):
    cm = AlignCM(16, 8, bin_size=bin_size, fusion=fusion).eval()
    for h, w in [(9, 13), (1, 1), (2, 5)]:
        out = cm(_x(h=h, w=w).float())
        c = 16 if fusion == 'concat' else 8
        assert tuple(out.shape) == (2, c, h, w) and c == cm.out_channels


@pytest.mark.parametrize('align_corners', [False, True])
def test_at_init_context_is_bilinear_upsampled_pool(align_corners):
    x = _x()
    cm = AlignCM(16, 8, align_corners=align_corners).double().eval()
    cm.init_weights()
    local = cm.local_conv(x)
    pooled = cm.context_conv(F.adaptive_avg_pool2d(x, 3))
    up = F.interpolate(pooled, size=(9, 13), mode='bilinear',
                       align_corners=align_corners)
    torch.testing.assert_close(cm(x), torch.cat([local, up], 1), rtol=0,
                               atol=1e-12)


def test_warp_goes_through_flow_warp():
    torch.manual_seed(0)
    x = _x()
    cm = AlignCM(16, 8, bin_size=3, fusion='sum').double().eval()
    torch.nn.init.normal_(cm.flow_head.flow.weight, std=0.3)
    local = cm.local_conv(x)
    context = cm.context(x)
    assert tuple(context.shape) == (2, 8, 3, 3)
    up = F.interpolate(context, size=(9, 13), mode='bilinear',
                       align_corners=False)
    flow = cm.flow_head(torch.cat([local, up], 1))
    assert flow.abs().max() > 0.1
    expected = local + flow_warp(context, flow, align_corners=False,
                                 padding_mode='border')
    torch.testing.assert_close(cm(x), expected, rtol=0, atol=0)
    # and the warp really moved the context away from plain upsampling
    assert not torch.allclose(cm(x), local + up)


def test_flow_conv_gets_gradient_and_survives_parent_init():
    cm = AlignCM(16, 8, init_cfg=dict(type='Xavier', layer='Conv2d'))
    cm.init_weights()
    assert torch.count_nonzero(cm.flow_head.flow.weight) == 0
    x = _x().float()
    (cm(x) * torch.randn(2, 16, 9, 13)).sum().backward()
    assert cm.flow_head.flow.weight.grad.abs().sum() > 0


def test_bad_arguments():
    with pytest.raises(ValueError, match='bin_size must be a positive int, '
                       'got 0'):
        AlignCM(16, 8, bin_size=0)
    with pytest.raises(ValueError, match="fusion must be one of .*'add'"):
        AlignCM(16, 8, fusion='add')
    with pytest.raises(ValueError, match=r'expected \(N, 16, H, W\) input, '
                       r'got \(2, 8, 9, 13\)'):
        AlignCM(16, 8)(_x(c=8).float())

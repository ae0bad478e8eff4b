"""AlignFA (AlignSeg §3.2): two zero-initialised flow heads, both inputs
warped by the shared flow_warp, then summed."""
import pytest
import torch
import torch.nn.functional as F

from mmfapn.models.layers import AlignFA, FlowHead, flow_warp


def _pair(c=8, lat=(11, 7), coarse=(6, 4), n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, c, *lat, generator=g, dtype=torch.float64),
            torch.randn(n, c, *coarse, generator=g, dtype=torch.float64))


@pytest.mark.parametrize('scope', ['mmdet_scope', 'mmseg_scope'])
def test_registered_and_param_count(scope, request, count_params):
    registry = request.getfixturevalue(scope)
    m = registry.build(dict(type='AlignFA', channels=256))
    assert type(m) is AlignFA
    # per head: 1x1 512->256 (no bias) + BN 256 + 3x3 256->2 (no bias)
    head = 512 * 256 + 2 * 256 + 256 * 2 * 9
    assert count_params(m.coarse_flow) == count_params(m.fine_flow) == head
    assert count_params(m) == 2 * head == 272_384
    assert m.coarse_flow.flow.bias is None


def test_at_init_is_plain_fpn_fusion():
    lat, coarse = _pair()
    fa = AlignFA(8).double().eval()
    fa.init_weights()
    up = F.interpolate(coarse, size=(11, 7), mode='bilinear',
                       align_corners=False)
    assert torch.equal(fa(lat, coarse), lat + up)


def test_warps_both_inputs_with_their_flows():
    torch.manual_seed(0)
    lat, coarse = _pair()
    fa = AlignFA(8, flow_channels=4).double().eval()
    for head in (fa.coarse_flow, fa.fine_flow):
        torch.nn.init.normal_(head.flow.weight, std=0.5)
    up = F.interpolate(coarse, size=(11, 7), mode='bilinear',
                       align_corners=False)
    feat = torch.cat([lat, up], 1)  # fine first, as AlignSeg
    f_up, f_lat = fa.coarse_flow(feat), fa.fine_flow(feat)
    assert f_up.abs().min() > 0 and not torch.allclose(f_up, f_lat)
    expected = flow_warp(up, f_up) + flow_warp(lat, f_lat)
    torch.testing.assert_close(fa(lat, coarse), expected, rtol=0, atol=0)


def test_flow_convs_learn_and_stay_zero_under_parent_init():
    torch.manual_seed(0)
    lat, coarse = (t.float() for t in _pair(n=2))
    fa = AlignFA(8, init_cfg=dict(type='Xavier', layer='Conv2d'))
    fa.init_weights()
    for head in (fa.coarse_flow, fa.fine_flow):
        assert torch.count_nonzero(head.flow.weight) == 0
    (fa(lat, coarse) * torch.randn(2, 8, 11, 7)).sum().backward()
    for head in (fa.coarse_flow, fa.fine_flow):
        assert head.flow.weight.grad.abs().sum() > 0


def test_flow_head_shapes_and_errors():
    head = FlowHead(6, 3)
    assert tuple(head(torch.randn(2, 6, 5, 9)).shape) == (2, 2, 5, 9)
    with pytest.raises(ValueError, match='size/scale_factor'):
        AlignFA(8, upsample_cfg=dict(mode='bilinear', scale_factor=2))

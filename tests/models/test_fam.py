import pytest
import torch
import torch.nn.functional as F

from mmfapn.models import FaPN, FeatureAlignModule


def test_mdcn_at_init_is_half_a_plain_conv():
    torch.manual_seed(0)
    fam = FeatureAlignModule(16, deform_groups=8).double()
    fam.init_weights()
    torch.nn.init.normal_(fam.dcn.bias)  # make the bias term visible
    up = torch.randn(2, 16, 9, 13, dtype=torch.float64)
    lat = torch.randn(2, 16, 9, 13, dtype=torch.float64)
    guide = fam.offset_fusion(torch.cat([lat, 2 * up], 1))
    got = fam.dcn(up, guide)
    expected = 0.5 * F.conv2d(up, fam.dcn.weight, padding=1) + \
        fam.dcn.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    # and the whole module: relu(that) + lat
    torch.testing.assert_close(
        fam(lat, up), F.relu(expected) + lat, rtol=0, atol=1e-12)


def test_fam_upsamples_bilinear_to_lateral_size():
    torch.manual_seed(0)
    fam = FeatureAlignModule(8, deform_groups=2).double()
    lat = torch.randn(1, 8, 11, 7, dtype=torch.float64)
    coarse = torch.randn(1, 8, 6, 4, dtype=torch.float64)
    up = F.interpolate(coarse, size=(11, 7), mode='bilinear',
                       align_corners=False)
    guide = fam.offset_fusion(torch.cat([lat, 2 * up], 1))
    expected = F.relu(fam.dcn(up, guide)) + lat
    torch.testing.assert_close(fam(lat, coarse), expected, rtol=0, atol=0)


def test_offset_branch_sees_twice_the_upsampled_map():
    fam = FeatureAlignModule(4, deform_groups=1).double()
    seen = {}

    def hook(module, args, out):
        seen['x'] = args[0]

    fam.offset_fusion.register_forward_hook(hook)
    lat = torch.randn(1, 4, 5, 5, dtype=torch.float64)
    up = torch.randn(1, 4, 5, 5, dtype=torch.float64)
    fam(lat, up)
    torch.testing.assert_close(seen['x'], torch.cat([lat, 2 * up], 1))


def test_offset_conv_learns_after_one_step():
    """A real loss through the neck: the offset/mask conv gets gradient,
    its first step moves it off zero, and afterwards the offset channels
    themselves (not just the mask) receive non-zero gradient."""
    torch.manual_seed(0)
    neck = FaPN([8, 16, 32], 16, 3, deform_groups=8)
    neck.init_weights()
    feats = [torch.randn(2, c, s, s) for c, s in ((8, 20), (16, 10),
                                                 (32, 5))]
    target = [torch.randn(2, 16, s, s) for s in (20, 10, 5)]
    opt = torch.optim.SGD(neck.parameters(), lr=0.1)

    def step():
        opt.zero_grad()
        loss = sum(F.mse_loss(o, t) for o, t in zip(neck(feats), target))
        loss.backward()
        return loss

    step()
    conv = neck.align_modules[0].dcn.conv_offset
    assert conv.weight.grad is not None
    assert conv.weight.grad.abs().sum() > 0
    opt.step()
    assert torch.count_nonzero(conv.weight) > 0
    step()
    n_offset = 2 * 8 * 9
    offset_grad = conv.weight.grad[:n_offset]
    assert offset_grad.abs().sum() > 0
    assert conv.weight.grad[n_offset:].abs().sum() > 0


def test_upsample_cfg_rejects_scale_factor():
    with pytest.raises(ValueError, match='scale_factor'):
        FeatureAlignModule(8, upsample_cfg=dict(mode='bilinear',
                                                scale_factor=2))

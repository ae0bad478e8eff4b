"""The implementation switch at model level: the FaPN neck's ``dcn_impl``
config and the ``MMFAPN_DCN_IMPL`` environment variable route every FAM's
deformable conv, and both implementations give the same model."""
import mmcv.ops
import pytest
import torch

from mmfapn.models import FaPN
from mmfapn.ops import GuidedModulatedDeformConv2d
from mmfapn.ops import mdcn_library
from mmfapn.ops import modulated_deform_conv as mdc

CHANNELS = [16, 24, 32, 40]


def _neck(dcn_impl='auto'):
    torch.manual_seed(0)
    neck = FaPN(in_channels=CHANNELS, out_channels=16, num_outs=4,
                deform_groups=8, dcn_impl=dcn_impl).double()
    # non-zero offsets and masks, several pixels large
    for m in neck.modules():
        if isinstance(m, GuidedModulatedDeformConv2d):
            torch.nn.init.normal_(m.conv_offset.weight, std=0.3)
            torch.nn.init.normal_(m.conv_offset.bias, std=1.0)
    return neck


def _feats():
    g = torch.Generator().manual_seed(1)
    # odd sizes at every level
    sizes = [(21, 27), (11, 14), (6, 7), (3, 4)]
    return [
        torch.randn(1, c, h, w, generator=g, dtype=torch.float64,
                    requires_grad=True) for c, (h, w) in zip(CHANNELS, sizes)
    ]


def _run(neck):
    feats = _feats()
    outs = neck(feats)
    loss = sum((o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype).view_as(
        o)).sum() for o in outs)
    loss.backward()
    params = {k: p.grad.clone() for k, p in neck.named_parameters()}
    return [o.detach() for o in outs], [f.grad for f in feats], params


@pytest.fixture
def mmcv_calls(monkeypatch):
    calls = []
    real = mdcn_library.mdcn_forward_mmcv

    def spy(*args):
        calls.append(args[0].shape)
        return real(*args)

    # the custom op's mmcv kernel (mmfapn.ops.mdcn_mmcv)
    monkeypatch.setattr(mdcn_library, 'mdcn_forward_mmcv', spy)
    monkeypatch.delenv(mdc.ENV_IMPL, raising=False)
    return calls


def test_config_and_env_switch_give_the_same_neck(mmcv_calls, monkeypatch):
    ref = _run(_neck('mmcv'))
    assert len(mmcv_calls) == 3  # one FAM per level C4, C3, C2
    got = _run(_neck('torch'))
    assert len(mmcv_calls) == 3
    monkeypatch.setenv(mdc.ENV_IMPL, 'mmcv')
    env = _run(_neck('auto'))
    assert len(mmcv_calls) == 6
    monkeypatch.setenv(mdc.ENV_IMPL, 'torch')
    _run(_neck('auto'))
    assert len(mmcv_calls) == 6

    for outs in (got, env):
        for a, b in zip(outs[0] + outs[1], ref[0] + ref[1]):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
        assert outs[2].keys() == ref[2].keys()
        for k in ref[2]:
            torch.testing.assert_close(outs[2][k], ref[2][k], rtol=1e-10,
                                       atol=1e-10, msg=k)
    # the offset convs do receive gradient (through the deformable conv)
    assert any('conv_offset' in k and v.abs().max() > 0
               for k, v in ref[2].items())


def test_auto_uses_the_torch_path_on_cpu(mmcv_calls):
    _run(_neck('auto'))
    assert mmcv_calls == []


def test_bad_dcn_impl():
    with pytest.raises(ValueError,
                       match=r"dcn_impl must be one of \('auto', 'mmcv', "
                       r"'torch'\), got 'cuda'"):
        GuidedModulatedDeformConv2d(8, 8, 3, 8, padding=1, dcn_impl='cuda')


def test_guided_conv_keeps_mmcv_names_and_init():
    """Same parameter names, attributes and random stream as mmcv's
    ModulatedDeformConv2d, without subclassing it."""
    torch.manual_seed(0)
    ref = mmcv.ops.ModulatedDeformConv2d(32, 16, 3, padding=1,
                                         deform_groups=8)
    torch.manual_seed(0)
    layer = GuidedModulatedDeformConv2d(32, 16, 3, guide_channels=24,
                                        padding=1, deform_groups=8)
    assert list(layer.state_dict()) == [
        'weight', 'bias', 'conv_offset.weight', 'conv_offset.bias'
    ]
    assert torch.equal(layer.weight, ref.weight)
    assert torch.equal(layer.bias, torch.zeros(16))
    for name in ('in_channels', 'out_channels', 'kernel_size', 'stride',
                 'padding', 'dilation', 'groups', 'deform_groups',
                 'transposed', 'output_padding'):
        assert getattr(layer, name) == getattr(ref, name), name
    assert layer.conv_offset.weight.shape == (3 * 8 * 9, 24, 3, 3)
    assert not layer.conv_offset.weight.any()
    layer.weight.data.zero_()
    layer.init_weights()
    assert torch.equal(layer.bias, torch.zeros(16))
    assert 0 < layer.weight.abs().max() <= 1 / (32 * 9)**0.5

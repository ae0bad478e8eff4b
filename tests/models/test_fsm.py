import pytest
import torch
import torch.nn.functional as F

from mmfapn.models import FeatureSelectionModule


@pytest.mark.parametrize('skip', [True, False])
def test_fsm_matches_formula(skip):
    torch.manual_seed(0)
    fsm = FeatureSelectionModule(12, 5, skip=skip).double()
    x = torch.randn(2, 12, 7, 9, dtype=torch.float64)
    w_att = fsm.conv_atten.conv.weight
    w = fsm.conv.conv.weight
    att = torch.sigmoid(F.conv2d(x.mean((2, 3), keepdim=True), w_att))
    y = x * att + (x if skip else 0)
    expected = F.conv2d(y, w)
    torch.testing.assert_close(fsm(x), expected, rtol=0, atol=1e-12)
    assert fsm.conv_atten.conv.bias is None and fsm.conv.conv.bias is None


def test_fsm_param_count(count_params):
    assert count_params(FeatureSelectionModule(256, 256)) == 131_072
    assert count_params(FeatureSelectionModule(512, 256)) == 393_216
    assert count_params(FeatureSelectionModule(1024, 256)) == 1_310_720


def test_fsm_init_weights_keeps_caffe2_xavier():
    fsm = FeatureSelectionModule(64, 32)
    fsm.init_weights()
    # ConvModule.init_weights would apply kaiming normal (unbounded);
    # Caffe2Xavier is uniform within sqrt(3 / fan_in)
    assert fsm.conv.conv.weight.abs().max() <= (3 / 64) ** 0.5
    assert fsm.conv_atten.conv.weight.abs().max() <= (3 / 64) ** 0.5

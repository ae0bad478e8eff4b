import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

from mmfapn.models import FaPN, FeatureAlignModule, FeatureSelectionModule

R50 = [256, 512, 1024, 2048]
FAPN_R50 = dict(type='FaPN', in_channels=R50, out_channels=256, num_outs=5)


def _feats(channels, sizes, batch=1, dtype=torch.float32):
    return [torch.randn(batch, c, h, w, dtype=dtype)
            for c, (h, w) in zip(channels, sizes)]


@pytest.mark.parametrize('scope', ['mmdet_scope', 'mmseg_scope'])
def test_param_count_r50_matches_release(scope, request, count_params):
    registry = request.getfixturevalue(scope)
    neck = registry.build(FAPN_R50)
    assert type(neck) is FaPN
    assert count_params(neck) == 7_786_888
    # per-component counts of the released neck (C4 level)
    c4 = 2
    assert count_params(neck.lateral_convs[c4]) == 1_310_720
    assert count_params(neck.align_modules[c4].offset_fusion) == 131_072
    dcn = neck.align_modules[c4].dcn
    assert dcn.weight.numel() + dcn.bias.numel() == 590_080
    assert count_params(dcn.conv_offset) == 497_880
    assert count_params(neck.fpn_convs[c4]) == 590_080
    assert count_params(neck.lateral_convs[-1]) == 524_544
    assert dcn.deform_groups == 8


def test_overhead_over_mmdet_fpn(mmdet_scope, count_params):
    fpn = mmdet_scope.build(dict(FAPN_R50, type='FPN'))
    fapn = mmdet_scope.build(FAPN_R50)
    assert count_params(fpn) == 3_344_384
    assert count_params(fapn) - count_params(fpn) == 4_442_504


def test_structure_as_released():
    neck = FaPN(R50, 256, 5)
    assert len(neck.align_modules) == len(neck.fpn_convs) == 3
    assert all(isinstance(m, FeatureSelectionModule)
               for m in neck.lateral_convs[:-1])
    top = neck.lateral_convs[-1]
    assert not isinstance(top, FeatureSelectionModule)
    assert top.conv.kernel_size == (1, 1) and top.conv.bias is not None
    for fsm in neck.lateral_convs[:-1]:
        assert fsm.conv_atten.conv.bias is None and fsm.conv.conv.bias is None
        assert fsm.conv_atten.norm_cfg is None and fsm.conv.norm_cfg is None
    for fam, out in zip(neck.align_modules, neck.fpn_convs):
        assert fam.offset_fusion.conv.bias is None
        assert fam.dcn.bias is not None and fam.dcn.conv_offset.bias is not None
        assert fam.dcn.conv_offset.kernel_size == (3, 3)
        assert out.conv.kernel_size == (3, 3) and out.conv.bias is not None
        assert not out.with_activation and not out.with_norm


@pytest.mark.parametrize('batch', [1, 3])
def test_output_shapes_odd_sizes(batch):
    # a 333x517 image through a stride-4..32 backbone, top level 1x1 too
    sizes = [(84, 130), (42, 65), (21, 33), (11, 17)]
    neck = FaPN(R50, 16, 5, deform_groups=8).eval()
    with torch.no_grad():
        outs = neck(_feats(R50, sizes, batch))
    assert [tuple(o.shape) for o in outs] == \
        [(batch, 16, h, w) for h, w in sizes] + [(batch, 16, 6, 9)]
    tiny = [(9, 7), (5, 4), (3, 2), (1, 1)]
    with torch.no_grad():
        outs = neck(_feats(R50, tiny, batch))
    assert [tuple(o.shape)[2:] for o in outs] == tiny + [(1, 1)]


def test_top_down_carries_pre_output_features():
    """P_i = conv3x3(prev_i) and prev_{i-1} = FAM(FSM(C_{i-1}), prev_i):
    recompute the whole neck by hand from its submodules."""
    torch.manual_seed(0)
    neck = FaPN([8, 16, 24], 8, 4, deform_groups=2).double().eval()
    # give the offsets something to do, so the path really is exercised
    for fam in neck.align_modules:
        torch.nn.init.normal_(fam.dcn.conv_offset.weight, std=0.1)
    c3, c4, c5 = _feats([8, 16, 24], [(13, 11), (7, 6), (4, 3)],
                        dtype=torch.float64)
    with torch.no_grad():
        outs = neck([c3, c4, c5])
        p5 = F.conv2d(c5, neck.lateral_convs[2].conv.weight,
                      neck.lateral_convs[2].conv.bias)
        prev4 = neck.align_modules[1](neck.lateral_convs[1](c4), p5)
        prev3 = neck.align_modules[0](neck.lateral_convs[0](c3), prev4)
        expected = [neck.fpn_convs[0](prev3), neck.fpn_convs[1](prev4), p5,
                    F.max_pool2d(p5, 1, stride=2)]
    for got, exp in zip(outs, expected):
        torch.testing.assert_close(got, exp, rtol=0, atol=1e-12)


@pytest.mark.parametrize('source', ['on_input', 'on_lateral', 'on_output',
                                    True])
def test_extra_convs(source, count_params):
    neck = FaPN(R50, 32, 5, start_level=1, add_extra_convs=source,
                relu_before_extra_convs=True)
    assert len(neck.extra_convs) == 2
    c_in = 2048 if source in ('on_input', True) else 32
    assert neck.extra_convs[0].conv.in_channels == c_in
    feats = _feats(R50, [(32, 48), (16, 24), (8, 12), (4, 6)])
    with torch.no_grad():
        outs = neck(feats)
        src = feats[3] if c_in == 2048 else outs[2]
        p6 = neck.extra_convs[0](src)
        p7 = neck.extra_convs[1](F.relu(p6))
    assert [tuple(o.shape[2:]) for o in outs] == \
        [(16, 24), (8, 12), (4, 6), (2, 3), (1, 2)]
    torch.testing.assert_close(outs[3], p6)
    torch.testing.assert_close(outs[4], p7)


@pytest.mark.parametrize('extra_output_convs', [0, 1])
def test_extra_convs_on_lateral_and_on_output_differ(extra_output_convs):
    """With a top output conv (or extra output convs) the top output is no
    longer the top lateral: 'on_lateral' feeds P6's conv the lateral,
    'on_output' the output, as mmdet's FPN."""
    torch.manual_seed(0)
    feats = _feats(R50, [(32, 48), (16, 24), (8, 12), (4, 6)])
    got = {}
    for source in ('on_lateral', 'on_output'):
        torch.manual_seed(1)  # same weights for both
        neck = FaPN(R50, 16, 5, start_level=1, add_extra_convs=source,
                    top_output_conv=not extra_output_convs,
                    extra_output_convs=extra_output_convs).eval()
        with torch.no_grad():
            outs = neck(feats)
            lateral = neck.lateral_convs[-1](feats[3])
            out = neck.fpn_convs[-1](lateral) if neck.top_output_conv \
                else lateral
            if extra_output_convs:
                out = neck.extra_output_convs[-1](out)
            torch.testing.assert_close(outs[2], out, rtol=0, atol=0)
            src = lateral if source == 'on_lateral' else out
            torch.testing.assert_close(
                outs[3], neck.extra_convs[0](src), rtol=0, atol=0)
            torch.testing.assert_close(
                outs[4], neck.extra_convs[1](outs[3]), rtol=0, atol=0)
        got[source] = outs
    for a, b in zip(got['on_lateral'][:3], got['on_output'][:3]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (got['on_lateral'][3] - got['on_output'][3]).abs().max() > 1e-3


def test_end_level_and_start_level():
    neck = FaPN(R50, 8, 2, start_level=1, end_level=2)
    assert len(neck.align_modules) == 1
    assert neck.lateral_convs[-1].conv.in_channels == 1024
    outs = neck(_feats(R50, [(16, 16), (8, 8), (4, 4), (2, 2)]))
    assert [tuple(o.shape) for o in outs] == [(1, 8, 8, 8), (1, 8, 4, 4)]


def test_offset_conv_zero_after_init_weights_under_fpn_init_cfg(
        mmdet_scope):
    cfg = dict(FAPN_R50, init_cfg=dict(
        type='Xavier', layer='Conv2d', distribution='uniform'))
    neck = mmdet_scope.build(cfg)
    for fam in neck.align_modules:
        torch.nn.init.normal_(fam.dcn.conv_offset.weight)  # dirty it
    neck.init_weights()
    for fam in neck.align_modules:
        assert torch.count_nonzero(fam.dcn.conv_offset.weight) == 0
        assert torch.count_nonzero(fam.dcn.conv_offset.bias) == 0
    # Xavier really ran on the other convs (so the re-zero is what saved
    # the offset convs).  Xavier uniform: U(+-b), b = sqrt(6 / (fan_in +
    # fan_out)), std b / sqrt(3), zero bias; the released init gives
    # Caffe2Xavier (b = sqrt(3 / fan_in)) and PyTorch's default (b =
    # 1 / sqrt(fan_in), non-zero bias), whose spreads differ by > 10%.
    # (convs with fan_in != fan_out, where Xavier differs from Caffe2Xavier)
    for conv in (neck.align_modules[0].offset_fusion.conv,  # 512 -> 256
                 neck.lateral_convs[1].conv.conv,  # FSM projection of C3
                 neck.lateral_convs[-1].conv):  # top lateral, 2048 -> 256
        w = conv.weight.detach()
        k = w[0, 0].numel()
        bound = (6 / (w.shape[0] * k + w.shape[1] * k))**0.5
        assert w.abs().max() <= bound
        assert float(w.std()) == pytest.approx(bound / 3**0.5, rel=0.03), \
            conv
        if conv.bias is not None:
            assert torch.count_nonzero(conv.bias) == 0


def test_offset_conv_zero_inside_a_detector(mmdet_scope):
    """The neck inside a full mmdet model, initialised the Runner's way."""
    from mmengine.config import Config
    cfg = Config.fromfile(_write_child_config(
        "_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'\n"
        "model = dict(backbone=dict(depth=18, init_cfg=None, "
        "in_channels=3), neck=dict(type='FaPN', in_channels=[64, 128, 256, "
        "512], init_cfg=dict(type='Xavier', layer='Conv2d', "
        "distribution='uniform')))\n"))
    model = mmdet_scope.build(cfg.model)
    model.init_weights()
    assert type(model.neck) is FaPN
    for fam in model.neck.align_modules:
        assert torch.count_nonzero(fam.dcn.conv_offset.weight) == 0


_tmp_configs = []


def _write_child_config(text):
    import tempfile
    d = tempfile.mkdtemp()
    path = f'{d}/child.py'
    with open(path, 'w') as f:
        f.write(text)
    _tmp_configs.append(d)
    return path


def test_type_swap_merges_onto_stock_fpn_config(mmdet_scope, count_params):
    """`neck=dict(type='FaPN')` on a stock mmdet config keeps FPN's args."""
    cfg = Config.fromfile(_write_child_config(
        "_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'\n"
        "model = dict(neck=dict(type='FaPN'))\n"))
    assert cfg.model.neck.in_channels == R50
    neck = mmdet_scope.build(cfg.model.neck)
    assert type(neck) is FaPN and neck.num_outs == 5
    assert count_params(neck) == 7_786_888


def test_released_initialisation():
    torch.manual_seed(0)
    neck = FaPN(R50, 256, 5)
    neck.init_weights()
    fam = neck.align_modules[2]
    # Caffe2Xavier = kaiming_uniform(a=1, fan_in): bound sqrt(3 / fan_in)
    for conv, fan_in in ((neck.lateral_convs[2].conv_atten.conv, 1024),
                         (neck.lateral_convs[2].conv.conv, 1024),
                         (fam.offset_fusion.conv, 512),
                         (neck.fpn_convs[2].conv, 256 * 9)):
        bound = (3 / fan_in) ** 0.5
        assert conv.weight.abs().max() <= bound
        assert conv.weight.abs().max() > 0.95 * bound
        assert float(conv.weight.std()) == pytest.approx(bound / 3 ** 0.5,
                                                     rel=0.05)
    assert torch.count_nonzero(neck.fpn_convs[2].conv.bias) == 0
    # MDCN: mmcv default U(+-1/sqrt(C*9)), zero bias
    bound = 1 / (256 * 9) ** 0.5
    assert fam.dcn.weight.abs().max() <= bound
    assert torch.count_nonzero(fam.dcn.bias) == 0
    # top lateral: PyTorch default (kaiming_uniform a=sqrt(5) -> bound
    # 1/sqrt(fan_in), and a non-zero uniform bias)
    top = neck.lateral_convs[-1].conv
    bound = 1 / 2048 ** 0.5
    assert top.weight.abs().max() <= bound
    assert top.weight.abs().max() > 0.95 * bound
    assert torch.count_nonzero(top.bias) == 256


@pytest.mark.parametrize('kwargs, exc, words', [
    (dict(in_channels=R50, out_channels=8, num_outs=3), ValueError,
     ['num_outs=3', 'smaller', '4']),
    (dict(in_channels=R50, out_channels=8, num_outs=5,
          add_extra_convs='on_top'), ValueError,
     ['add_extra_convs', "'on_top'", 'on_input']),
    (dict(in_channels=R50, out_channels=8, num_outs=5, add_extra_convs=1),
     TypeError, ['add_extra_convs', '1']),
    (dict(in_channels=256, out_channels=8, num_outs=5), TypeError,
     ['in_channels', '256']),
    (dict(in_channels=R50, out_channels=8, num_outs=4, end_level=2),
     ValueError, ['num_outs must be 3', 'got 4']),
    (dict(in_channels=R50, out_channels=8, num_outs=4,
          upsample_cfg=dict(mode='nearest', scale_factor=2)), ValueError,
     ['scale_factor']),
])
def test_bad_constructor_arguments(kwargs, exc, words):
    with pytest.raises(exc) as info:
        FaPN(**kwargs)
    msg = str(info.value)
    assert 'FaPN' in msg or 'FeatureAlignModule' in msg
    for word in words:
        assert word in msg


def test_bad_inputs_at_run_time():
    neck = FaPN(R50, 8, 4)
    sizes = [(16, 16), (8, 8), (4, 4), (2, 2)]
    with pytest.raises(ValueError, match=r'expected 4 input feature maps.*'
                       r'got 3'):
        neck(_feats(R50[:3], sizes[:3]))
    bad = _feats([256, 512, 1000, 2048], sizes)
    with pytest.raises(ValueError, match=r'input level 2 has 1000 channels, '
                       r'expected in_channels\[2\]=1024'):
        neck(bad)
    flat = _feats(R50, sizes)
    flat[1] = flat[1][0]
    with pytest.raises(ValueError, match=r'input level 1 must be a 4-D'):
        neck(flat)

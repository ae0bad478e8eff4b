"""UPerFaPNHead: forward against an independent reference, parameter
overhead formula, init, odd sizes, errors."""
import pytest
import torch
import torch.nn.functional as F

import mmfapn  # noqa: F401  (registers UPerFaPNHead)

IN_CHANNELS = [16, 24, 40, 64]
SIZES = [(15, 21), (8, 11), (4, 6), (2, 3)]  # odd, as a ResNet makes them


def _head_cfg(**kw):
    cfg = dict(
        in_channels=IN_CHANNELS,
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2),
        channels=32,
        dropout_ratio=0.1,
        num_classes=5,
        norm_cfg=dict(type='BN', requires_grad=True),
        align_corners=False,
        deform_groups=4)
    cfg.update(kw)
    return cfg


def _build(registry, **kw):
    head = registry.build(dict(type='UPerFaPNHead', **_head_cfg(**kw)))
    head.init_weights()
    return head


def _inputs(batch=2, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(batch, c, h, w, generator=g, dtype=dtype)
        for c, (h, w) in zip(IN_CHANNELS, SIZES)
    ]


def _ref_fsm(fsm, x):
    att = torch.sigmoid(
        F.conv2d(x.mean((2, 3), keepdim=True), fsm.conv_atten.conv.weight))
    return F.conv2d(x + x * att, fsm.conv.conv.weight)


def _ref_fam(fam, lat, coarse, mdcn, groups):
    up = F.interpolate(
        coarse, size=lat.shape[-2:], mode='bilinear', align_corners=False)
    guide = F.conv2d(
        torch.cat([lat, 2 * up], 1), fam.offset_fusion.conv.weight)
    dcn = fam.dcn
    o = F.conv2d(guide, dcn.conv_offset.weight, dcn.conv_offset.bias,
                 padding=1)
    o1, o2, m = torch.chunk(o, 3, dim=1)
    aligned = mdcn(up, torch.cat([o1, o2], 1), torch.sigmoid(m), dcn.weight,
                   dcn.bias, padding=1, deform_groups=groups)
    return F.relu(aligned) + lat


def test_forward_matches_reference(mmseg_scope, mdcn_reference):
    """FSM laterals, FAM top-down fusion (x2 guide, bilinear upsampling,
    deformable sampling) and UPerHead's fusion, written out independently
    with the DCNv2 definition from conftest."""
    head = _build(mmseg_scope).double().eval()
    torch.manual_seed(0)
    for fam in head.align_modules:  # non-zero offsets, so sampling matters
        torch.nn.init.normal_(fam.dcn.conv_offset.weight, std=0.05)
        torch.nn.init.normal_(fam.dcn.conv_offset.bias, std=0.5)
    x = _inputs(dtype=torch.float64)
    with torch.no_grad():
        out = head(x)
        lats = [_ref_fsm(f, x[i]) for i, f in enumerate(head.lateral_convs)]
        prev = head.psp_forward(x)  # PPM + bottleneck, mmseg's own code
        pyramid = [prev]
        for i in (2, 1, 0):
            prev = _ref_fam(head.align_modules[i], lats[i], prev,
                            mdcn_reference, 4)
            pyramid.insert(0, prev)
        outs = [head.fpn_convs[i](pyramid[i]) for i in range(3)]
        outs.append(pyramid[3])
        outs = [outs[0]] + [
            F.interpolate(o, size=SIZES[0], mode='bilinear',
                          align_corners=False) for o in outs[1:]
        ]
        expected = head.conv_seg(head.fpn_bottleneck(torch.cat(outs, 1)))
    assert out.shape == (2, 5, 15, 21)
    torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-9)


def test_parameter_overhead_formula(mmseg_scope, count_params):
    """Overhead over UPerHead: per level below the top, an FSM replaces the
    bias-free 1x1 lateral + BN, and a FAM is added."""
    c, g = 32, 4
    fam = 2 * c * c + (9 * c * c + c) + (9 * c * 27 * g + 27 * g)
    expected = sum(ci * ci + ci * c - (ci * c + 2 * c) + fam
                   for ci in IN_CHANNELS[:-1])
    cfg = _head_cfg()
    cfg.pop('deform_groups')
    uper = mmseg_scope.build(dict(type='UPerHead', **cfg))
    head = _build(mmseg_scope)
    assert count_params(head) - count_params(uper) == expected == 129_764
    # the documented R-50 / channels=512 / 8 groups figure
    c, g = 512, 8
    fam = 2 * c * c + (9 * c * c + c) + (9 * c * 27 * g + 27 * g)
    assert sum(ci * ci + ci * c - (ci * c + 2 * c) + fam
               for ci in (256, 512, 1024)) == 13_012_104


def test_offsets_zero_after_parent_init(mmseg_scope):
    """A parent's init_cfg on every Conv2d must not wipe the zero init of
    the offset/mask convs; FSMs keep their own init."""
    head = _build(
        mmseg_scope, init_cfg=dict(type='Xavier', layer='Conv2d'))
    for fam in head.align_modules:
        assert fam.dcn.conv_offset.weight.abs().sum() == 0
        assert fam.dcn.conv_offset.bias.abs().sum() == 0
        assert fam.dcn.weight.abs().sum() > 0
    assert type(head.lateral_convs[0]).__name__ == 'FeatureSelectionModule'
    assert len(head.lateral_convs) == len(head.align_modules) == 3


def test_train_step_odd_sizes(mmseg_scope):
    head = _build(mmseg_scope)
    head.train()
    x = _inputs()
    logits = head(x)
    assert logits.shape == (2, 5, 15, 21)
    target = torch.randint(0, 5, (2, 29, 41))
    loss = F.cross_entropy(
        F.interpolate(logits, size=(29, 41), mode='bilinear'), target)
    loss.backward()
    for fam in head.align_modules:  # the zero-init offsets learn
        assert fam.dcn.conv_offset.weight.grad.abs().sum() > 0
    for fsm in head.lateral_convs:
        assert fsm.conv_atten.conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize('kw, text', [
    (dict(deform_groups=5), 'channels=32 must be divisible by '
     'deform_groups=5'),
    (dict(in_channels=[64], in_index=[3]), 'at least 2 input levels'),
])
def test_bad_arguments(mmseg_scope, kw, text):
    with pytest.raises(ValueError, match=text.replace('(', r'\(')):
        mmseg_scope.build(dict(type='UPerFaPNHead', **_head_cfg(**kw)))

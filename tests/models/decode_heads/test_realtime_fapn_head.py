"""RealtimeFaPNHead (real-time FaPN): structure, forward against an independent
re-implementation with plain torch ops, odd sizes, loss/predict, errors."""
import pytest
import torch
import torch.nn.functional as F

import mmfapn  # noqa: F401  (registers RealtimeFaPNHead)

R18_CHANNELS = [128, 256, 512]  # C3, C4, C5 of ResNet-18/34


def _head(mmseg_scope, **kwargs):
    cfg = dict(
        type='RealtimeFaPNHead',
        in_channels=R18_CHANNELS,
        channels=16,
        fpn_channels=32,
        num_classes=5,
        norm_cfg=dict(type='BN'))
    cfg.update(kwargs)
    head = mmseg_scope.build(cfg)
    head.init_weights()
    return head


def _feats(sizes, channels=R18_CHANNELS, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(2, c, h, w, generator=g, dtype=dtype)
        for c, (h, w) in zip(channels, sizes)
    ]


# sizes of ResNet C3..C5 for a 67x99 input (odd everywhere)
ODD_SIZES = [(9, 13), (5, 7), (3, 4)]


def _conv(x, conv_module):
    """A ConvModule (conv [+ BN in eval] [+ ReLU]) with functional ops."""
    conv = conv_module.conv
    y = F.conv2d(x, conv.weight, conv.bias, padding=conv.padding)
    if conv_module.with_norm:
        bn = conv_module.norm
        y = F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight,
                         bn.bias, False, 0.0, bn.eps)
    if conv_module.with_activation:
        y = F.relu(y)
    return y


def _fsm(x, fsm):
    att = torch.sigmoid(
        F.conv2d(x.mean((2, 3), keepdim=True), fsm.conv_atten.conv.weight))
    return F.conv2d(x + x * att, fsm.conv.conv.weight)


def _fam_at_init(ref, up, fam):
    """FAM's aligned map while its offset/mask conv is zero: offsets 0 and
    mask 0.5, so the deformable conv is 0.5 x a plain 3x3 conv."""
    dcn = fam.dcn
    assert dcn.conv_offset.weight.abs().sum() == 0
    return F.relu(0.5 * F.conv2d(up, dcn.weight, padding=1) +
                  dcn.bias.view(1, -1, 1, 1))


def _fam_reference(ref, up, fam, mdcn, seen=None):
    """FAM's aligned map written out with the DCNv2 definition (conftest):
    offsets and mask from conv3x3(conv1x1(cat[ref, 2 * up])), any offsets.
    The offsets are appended to ``seen`` (a list) if given."""
    dcn = fam.dcn
    guide = F.conv2d(
        torch.cat([ref, 2 * up], 1), fam.offset_fusion.conv.weight)
    o = F.conv2d(guide, dcn.conv_offset.weight, dcn.conv_offset.bias,
                 padding=1)
    o1, o2, m = torch.chunk(o, 3, dim=1)
    if seen is not None:
        seen.append(torch.cat([o1, o2], 1))
    return F.relu(
        mdcn(up, torch.cat([o1, o2], 1), torch.sigmoid(m), dcn.weight,
             dcn.bias, padding=1, deform_groups=dcn.deform_groups))


def _reference_forward(head, feats, align):
    """The head's logits from its weights with plain torch ops (nearest
    upsampling to the lateral's size); ``align(ref, up, fam)`` stands for
    the FAM."""

    def lateral(i):
        if head.use_fsm:
            return _fsm(feats[i], head.laterals[i])
        conv = head.laterals[i].conv
        return F.conv2d(feats[i], conv.weight, conv.bias)

    p = lateral(2)
    for i in (1, 0):
        ref = lateral(i)
        up = F.interpolate(p, size=ref.shape[-2:], mode='nearest')
        al = align(ref, up, head.fams[i]) if head.use_fam else up
        if head.fusion == 'concat':
            p = _conv(torch.cat([al, ref], 1), head.fusion_convs[i])
        else:
            p = al + ref
    return F.conv2d(
        _conv(p, head.pred_conv), head.conv_seg.weight, head.conv_seg.bias)


@pytest.mark.parametrize('use_fam', [False, True])
@pytest.mark.parametrize('use_fsm', [False, True])
@pytest.mark.parametrize('fusion', ['sum', 'concat'])
def test_forward_matches_functional_reference(mmseg_scope, use_fam, use_fsm,
                                              fusion):
    """Every ablation row against the supplement's recipe written with
    plain torch ops (nearest upsampling to the lateral's size)."""
    torch.manual_seed(0)
    head = _head(
        mmseg_scope, use_fam=use_fam, use_fsm=use_fsm,
        fusion=fusion).double().eval()
    feats = _feats(ODD_SIZES, dtype=torch.float64)
    expected = _reference_forward(head, feats, _fam_at_init)
    with torch.no_grad():
        got = head(feats)
    assert got.shape == (2, 5, 9, 13)  # the finest level's (stride 8) size
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize('fusion', ['sum', 'concat'])
def test_forward_with_random_offsets_matches_dcnv2_reference(
        mmseg_scope, mdcn_reference, fusion):
    """Non-zero offsets and masks, so the deformable sampling and the
    offset branch's inputs (the lateral and 2x the upsampled map) matter:
    at init (zero offsets) the lateral does not reach the FAM's output."""
    torch.manual_seed(0)
    head = _head(mmseg_scope, fusion=fusion).double().eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for fam in head.fams:
            w, b = fam.dcn.conv_offset.weight, fam.dcn.conv_offset.bias
            w.copy_(0.05 * torch.randn(w.shape, generator=g,
                                       dtype=w.dtype))
            b.copy_(0.5 * torch.randn(b.shape, generator=g, dtype=b.dtype))
    feats = _feats(ODD_SIZES, dtype=torch.float64)
    offsets = []
    with torch.no_grad():
        got = head(feats)
        expected = _reference_forward(
            head, feats, lambda ref, up, fam: _fam_reference(
                ref, up, fam, mdcn_reference, offsets))
    # sub-pixel and multi-pixel displacements (not a mere shift by whole
    # pixels, not negligible)
    for off in offsets:
        assert 0.5 < off.abs().mean() < 3
        assert (off - off.round()).abs().mean() > 0.1
    assert got.shape == (2, 5, 9, 13)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)


def test_submodules_per_switch(mmseg_scope):
    from mmfapn.models import FeatureAlignModule, FeatureSelectionModule
    full = _head(mmseg_scope)
    assert all(isinstance(m, FeatureSelectionModule) for m in full.laterals)
    assert len(full.fams) == 2 and len(full.fusion_convs) == 2
    fam = full.fams[0]
    assert isinstance(fam, FeatureAlignModule)
    assert fam.upsample_cfg == dict(mode='nearest')
    assert fam.dcn.deform_groups == 8
    fpn = _head(mmseg_scope, use_fam=False, use_fsm=False, fusion='sum')
    assert fpn.fams is None and fpn.fusion_convs is None
    assert not any(
        isinstance(m, (FeatureSelectionModule, FeatureAlignModule))
        for m in fpn.modules())


def test_parameter_counts_per_component(mmseg_scope, count_params):
    """Head parameters at the real-time width (128), from the formulas in
    the docstring: the supplement-table deltas come from these."""
    def build(**kw):
        return _head(
            mmseg_scope, channels=64, fpn_channels=128, num_classes=19, **kw)

    fpn = build(use_fam=False, use_fsm=False, fusion='sum')
    laterals = sum(c * 128 + 128 for c in R18_CHANNELS)
    pred = 128 * 64 * 9 + 2 * 64 + 64 * 19 + 19
    assert count_params(fpn) == laterals + pred == 190163
    fam = build(use_fam=True, use_fsm=False, fusion='sum')
    one_fam = (256 * 128  # 1x1 offset fusion, no bias
               + 128 * 128 * 9 + 128  # MDCN
               + 128 * 216 * 9 + 216)  # offset/mask conv, 8 groups x 27
    assert count_params(fam) - count_params(fpn) == 2 * one_fam == 858800
    fsm = build(use_fam=True, use_fsm=True, fusion='sum')
    # FSM = attention conv (C x C) + projection (C x 128), neither biased
    assert count_params(fsm) - count_params(fam) == sum(
        c * c - 128 for c in R18_CHANNELS) == 343680
    concat = build(use_fam=True, use_fsm=True, fusion='concat')
    assert count_params(concat) - count_params(fsm) == 2 * (
        256 * 128 + 2 * 128) == 66048


def test_nearest_upsampling_is_x2_for_even_sizes(mmseg_scope):
    """For even sizes the 'upsample to the lateral size' rule is exactly
    the supplement's nearest x2 (each pixel repeated 2x2)."""
    from mmfapn.models.utils import resize_to
    head = _head(mmseg_scope, use_fam=False)
    coarse = torch.randn(1, 32, 3, 5)
    up = resize_to(coarse, (6, 10), head.upsample_cfg)
    expected = coarse.repeat_interleave(2, 2).repeat_interleave(2, 3)
    torch.testing.assert_close(up, expected, rtol=0, atol=0)
    fam_head = _head(mmseg_scope, use_fam=True)
    torch.testing.assert_close(
        resize_to(coarse, (6, 10), fam_head.fams[0].upsample_cfg), expected,
        rtol=0, atol=0)


def test_offset_conv_stays_zero_after_parent_init(mmseg_scope):
    head = _head(
        mmseg_scope,
        init_cfg=dict(type='Kaiming', layer='Conv2d'))  # reaches every conv
    for fam in head.fams:
        assert fam.dcn.conv_offset.weight.abs().sum() == 0
        assert fam.dcn.conv_offset.bias.abs().sum() == 0
    # ... while the other convs were re-initialised
    assert head.pred_conv.conv.weight.abs().sum() > 0


def test_loss_and_predict_upsample_to_input_size(mmseg_scope):
    """Head-level loss/predict: stride-8 logits, upsampled (bilinear) to
    the odd input size by mmseg; the offset convs get gradient."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    torch.manual_seed(0)
    head = _head(mmseg_scope)
    h, w = 67, 99
    samples = []
    for _ in range(2):
        s = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                        pad_shape=(h, w)))
        s.gt_sem_seg = PixelData(data=torch.randint(0, 5, (1, h, w)))
        samples.append(s)
    feats = _feats(ODD_SIZES)
    losses = head.loss(feats, samples, train_cfg=dict())
    assert set(losses) == {'loss_ce', 'acc_seg'}
    assert torch.isfinite(losses['loss_ce']) and losses['loss_ce'] > 0
    losses['loss_ce'].backward()
    for fam in head.fams:
        # zero-initialised, but the mask channels receive gradient
        assert fam.dcn.conv_offset.weight.grad.abs().sum() > 0
    head.eval()
    with torch.no_grad():
        logits = head.predict(
            feats, [s.metainfo for s in samples], test_cfg=dict())
    assert logits.shape == (2, 5, h, w)
    with torch.no_grad():
        low = head(feats)
    torch.testing.assert_close(
        logits,
        F.interpolate(low, size=(h, w), mode='bilinear', align_corners=False))


def test_bad_arguments_raise(mmseg_scope):
    with pytest.raises(ValueError, match="fusion must be one of .*'mean'"):
        _head(mmseg_scope, fusion='mean')
    with pytest.raises(ValueError, match="input_transform must be "
                       "'multiple_select', got 'resize_concat'"):
        _head(mmseg_scope, input_transform='resize_concat')
    with pytest.raises(ValueError, match='at least two levels'):
        _head(mmseg_scope, in_channels=[128], in_index=[0])
    with pytest.raises(ValueError, match='fpn_channels must be a positive'):
        _head(mmseg_scope, fpn_channels=0)


def test_wrong_input_channels_named(mmseg_scope):
    head = _head(mmseg_scope)
    feats = _feats(ODD_SIZES, channels=[128, 250, 512])
    with pytest.raises(ValueError, match=r'input level 1 .*\(N, 256, H, W\), '
                       r'got shape \(2, 250, 5, 7\)'):
        head(feats)


def test_deprecated_name_builds_the_same_head_and_warns_once(
        mmseg_scope, monkeypatch):
    """``type='FaPNHead'`` (the old name) still builds: a subclass of
    RealtimeFaPNHead with the same state-dict keys, warning once."""
    import warnings

    from mmfapn.models.decode_heads import FaPNHead, RealtimeFaPNHead
    monkeypatch.setattr(FaPNHead, '_warned', False)
    with pytest.warns(FutureWarning, match="'FaPNHead' is deprecated; use "
                      "'RealtimeFaPNHead'"):
        old = _head(mmseg_scope, type='FaPNHead')
    assert isinstance(old, RealtimeFaPNHead)
    with warnings.catch_warnings():
        warnings.simplefilter('error', FutureWarning)
        _head(mmseg_scope, type='FaPNHead')  # once per process
    new = _head(mmseg_scope)
    assert type(new) is RealtimeFaPNHead
    assert {k: v.shape for k, v in old.state_dict().items()} == \
        {k: v.shape for k, v in new.state_dict().items()}
    new.load_state_dict(old.state_dict(), strict=True)

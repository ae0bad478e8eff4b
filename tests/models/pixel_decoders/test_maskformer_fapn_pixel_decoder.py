"""FaPNPixelDecoder (MaskFormer + FaPN): shapes, exact parameter counts,
equality with a functional re-implementation of the released decoder, the
shared-GN quirk, initialisation, the encoder variant and bad input."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmfapn.models.layers import FeatureSelectionModule
from mmfapn.models.pixel_decoders import FaPNPixelDecoder
from mmfapn.models.pixel_decoders.fapn_pixel_decoder import BorrowedNorm

R50 = [256, 512, 1024, 2048]
SWIN_L = [192, 384, 768, 1536]
DG = 8  # deformable groups


def hand_count(in_channels, feat=256, out=256, share_offset_norm=True,
               use_fsm=False):
    """Parameters of the released decoder, counted from its structure
    (the released MaskFormer + FaPN decoder); GN has a weight and a bias per channel."""
    gn = 2 * feat
    top = in_channels[-1]
    total = top * feat * 9 + gn                  # res5: conv3x3 (no bias)+GN
    total += top * feat + feat                   # memory: input_proj 1x1+bias
    for c in in_channels[:-1]:
        if use_fsm:
            total += c * c + c * feat            # FSM: two 1x1, no bias/norm
        else:
            total += c * feat + gn               # lateral 1x1 (no bias) + GN
        total += 2 * feat * feat                 # FAM offset fusion 1x1
        if not share_offset_norm:
            total += gn                          # its own GN
        total += feat * feat * 9 + feat          # MDCN 3x3 + bias
        taps = 3 * DG * 9                        # (dy, dx, mask) x dg x 3x3
        total += feat * taps * 9 + taps          # offset/mask conv3x3 + bias
        total += feat * feat * 9 + gn            # output conv3x3 + GN
    total += feat * out * 9 + out                # mask_feature conv3x3 + bias
    return total


@pytest.mark.parametrize('in_channels,kwargs,expected', [
    (R50, {}, 11_722_120),
    (R50, dict(share_offset_norm=False), 11_723_656),
    (R50, dict(use_fsm=True), 13_096_840),
    (SWIN_L, {}, 10_296_712),
])
def test_parameter_count_matches_hand_count(in_channels, kwargs, expected,
                                            count_params):
    dec = FaPNPixelDecoder(in_channels, 256, 256, **kwargs)
    assert hand_count(in_channels, **kwargs) == expected
    assert count_params(dec) == expected


def test_overhead_over_mmdet_pixel_decoder(mmdet_scope, count_params):
    """FaPN adds exactly 3 FAMs (1x1 offset fusion, offset/mask conv, MDCN)
    to mmdet's PixelDecoder plus the memory projection that mmdet's head
    owns (decoder_input_proj) for the stock decoder."""
    stock = mmdet_scope.build(dict(type='PixelDecoder', in_channels=R50,
                                   feat_channels=256, out_channels=256))
    fapn = FaPNPixelDecoder(R50, 256, 256)
    fam = 2 * 256 * 256 + (256 * 256 * 9 + 256) + (256 * 216 * 9 + 216)
    input_proj = 2048 * 256 + 256
    assert count_params(fapn) - count_params(stock) == 3 * fam + input_proj


@pytest.mark.parametrize('in_channels', [R50, SWIN_L], ids=['r50', 'swin-l'])
@pytest.mark.parametrize('size', [(97, 75), (65, 91)])
def test_output_shapes_for_odd_images(in_channels, size):
    """Backbone levels of an odd-sized image have ceil(H / s) rows (ResNet
    and Swin both pad); mask_feature keeps stride 4, memory stride 32."""
    h, w = size
    dec = FaPNPixelDecoder(in_channels, feat_channels=256, out_channels=128)
    feats = [torch.randn(2, c, math.ceil(h / s), math.ceil(w / s))
             for c, s in zip(in_channels, (4, 8, 16, 32))]
    with torch.no_grad():
        mask_feature, memory = dec(feats, None)
    assert tuple(mask_feature.shape) == (2, 128, math.ceil(h / 4),
                                         math.ceil(w / 4))
    assert tuple(memory.shape) == (2, 256, math.ceil(h / 32),
                                   math.ceil(w / 32))


def _gn(x, norm):
    return F.group_norm(x, norm.num_groups, norm.weight, norm.bias, norm.eps)


def _reference_forward(dec, feats, mdcn):
    """The released BasePixelFANDecoder.forward_features (+ the predictor's
    input_proj) written with functional ops and the decoder's weights."""
    top = feats[-1]
    m = dec.last_feat_conv
    y = F.relu(_gn(F.conv2d(top, m.conv.weight, padding=1), m.norm))
    for i in range(len(feats) - 2, -1, -1):
        lat_conv, fam, out = (dec.lateral_convs[i], dec.align_modules[i],
                              dec.output_convs[i])
        lat = _gn(F.conv2d(feats[i], lat_conv.conv.weight), lat_conv.norm)
        up = F.interpolate(y, size=lat.shape[-2:], mode='bilinear',
                           align_corners=False)
        fusion = fam.offset_fusion
        guide = F.conv2d(torch.cat([lat, 2 * up], 1), fusion.conv.weight)
        # official quirk: the offset fusion conv uses the output conv's GN
        guide = _gn(guide, out.norm if dec.share_offset_norm else
                    fusion.norm)
        dcn = fam.dcn
        o = F.conv2d(guide, dcn.conv_offset.weight, dcn.conv_offset.bias,
                     padding=1)
        o1, o2, mask = torch.chunk(o, 3, dim=1)
        aligned = F.relu(mdcn(up, torch.cat([o1, o2], 1), mask.sigmoid(),
                              dcn.weight, dcn.bias, padding=1,
                              deform_groups=dcn.deform_groups))
        y = F.relu(_gn(F.conv2d(aligned + lat, out.conv.weight, padding=1),
                       out.norm))
    mask_feature = F.conv2d(y, dec.mask_feature.weight, dec.mask_feature.bias,
                            padding=1)
    memory = F.conv2d(top, dec.input_proj.weight, dec.input_proj.bias)
    return mask_feature, memory


@pytest.mark.parametrize('share', [True, False])
def test_forward_equals_functional_reference(share, mdcn_reference):
    """Random weights everywhere (offsets of a few pixels, non-trivial GN
    affine) so every term of the released formula is exercised."""
    torch.manual_seed(0)
    in_channels = [8, 12, 16]
    dec = FaPNPixelDecoder(in_channels, 16, 8, share_offset_norm=share,
                           norm_cfg=dict(type='GN', num_groups=4),
                           deform_groups=2).double()
    with torch.no_grad():
        for p in dec.parameters():
            p.normal_(0, 0.3)
    feats = [torch.randn(2, c, h, w, dtype=torch.float64)
             for c, (h, w) in zip(in_channels, [(13, 11), (7, 6), (4, 3)])]
    got = dec(feats, None)
    expected = _reference_forward(dec, feats, mdcn_reference)
    # the offsets really move the samples (not the zero-init shortcut)
    off = dec.align_modules[0].dcn.offset_and_mask(torch.randn(
        1, 16, 5, 5, dtype=torch.float64))[0]
    assert off.abs().max() > 1
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=0, atol=1e-10)


def test_shared_group_norm_quirk():
    shared = FaPNPixelDecoder(R50, 256, 256)
    separate = FaPNPixelDecoder(R50, 256, 256, share_offset_norm=False)
    for i in range(3):
        fam_norm = shared.align_modules[i].offset_fusion.norm
        assert isinstance(fam_norm, BorrowedNorm)
        assert fam_norm.borrowed is shared.output_convs[i].norm
        assert isinstance(fam_norm.borrowed, torch.nn.GroupNorm)
        assert fam_norm.borrowed.num_groups == 32
        assert isinstance(separate.align_modules[i].offset_fusion.norm,
                          torch.nn.GroupNorm)
        assert separate.align_modules[i].offset_fusion.norm is not \
            separate.output_convs[i].norm
    # the shared GN is saved and optimised once, under the output conv
    keys = shared.state_dict().keys()
    assert 'output_convs.0.gn.weight' in keys
    assert not any(k.startswith('align_modules.0.offset_fusion.gn')
                   for k in keys)
    names = [n for n, _ in shared.named_parameters()]
    assert len(names) == len(set(id(p) for p in shared.parameters()))
    with pytest.raises(ValueError, match='share_offset_norm'):
        FaPNPixelDecoder(R50, 256, 256, norm_cfg=None)
    with pytest.raises(ValueError, match='running statistics'):
        FaPNPixelDecoder(R50, 256, 256, norm_cfg=dict(type='BN'))


def test_shared_norm_works_with_mmengine_paramwise_optimizer():
    """mmengine's optimizer constructor with paramwise_cfg (as every
    MaskFormer config uses) walks modules, not parameters: a GN registered
    under two parents would enter two parameter groups and torch would
    refuse the optimizer."""
    from mmengine.optim import build_optim_wrapper
    dec = FaPNPixelDecoder([16, 32], 32, 32)
    cfg = dict(optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4),
               paramwise_cfg=dict(custom_keys={'align_modules': dict(
                   lr_mult=0.1)}, norm_decay_mult=0.0))
    wrapper = build_optim_wrapper(dec, cfg)
    grouped = [p for g in wrapper.optimizer.param_groups for p in g['params']]
    assert len(grouped) == len(list(dec.parameters()))
    # one step moves the shared GN the same for both convs
    x = [torch.randn(1, 16, 8, 8), torch.randn(1, 32, 4, 4)]
    out, _ = dec(x, None)
    out.sum().backward()
    wrapper.step()
    gn = dec.output_convs[0].norm
    assert dec.align_modules[0].offset_fusion.norm.borrowed is gn
    assert not torch.all(gn.bias == 0)


def test_released_structure_without_fsm():
    dec = FaPNPixelDecoder(R50, 256, 256)
    for lat, c in zip(dec.lateral_convs, R50):
        assert lat.conv.kernel_size == (1, 1) and lat.conv.bias is None
        assert lat.conv.in_channels == c
        assert isinstance(lat.norm, torch.nn.GroupNorm)
        assert not lat.with_activation
    for out in dec.output_convs:
        assert out.conv.kernel_size == (3, 3) and out.conv.bias is None
        assert isinstance(out.activate, torch.nn.ReLU)
    for fam in dec.align_modules:
        assert fam.offset_fusion.conv.bias is None
        assert fam.dcn.deform_groups == 8
    assert dec.last_feat_conv.conv.in_channels == 2048
    assert dec.last_feat_conv.conv.kernel_size == (3, 3)
    assert dec.mask_feature.bias is not None
    fsm = FaPNPixelDecoder(R50, 256, 256, use_fsm=True)
    assert all(isinstance(m, FeatureSelectionModule)
               for m in fsm.lateral_convs)


@pytest.mark.parametrize('init_cfg', [None,
                                      dict(type='Xavier', layer='Conv2d')])
def test_init_weights_keeps_offsets_zero(init_cfg):
    torch.manual_seed(0)
    dec = FaPNPixelDecoder([64, 64, 64], 64, 64, init_cfg=init_cfg)
    with torch.no_grad():
        for p in dec.parameters():
            p.fill_(0.5)  # anything init_weights must overwrite
    dec.init_weights()
    for fam in dec.align_modules:
        assert torch.count_nonzero(fam.dcn.conv_offset.weight) == 0
        assert torch.count_nonzero(fam.dcn.conv_offset.bias) == 0
    if init_cfg is None:
        # released: Caffe2Xavier = U(+-sqrt(3 / fan_in)), bias 0, GN (1, 0)
        for conv in [dec.output_convs[0].conv, dec.lateral_convs[0].conv,
                     dec.last_feat_conv.conv, dec.mask_feature,
                     dec.input_proj]:
            fan_in = conv.weight[0].numel()
            bound = math.sqrt(3 / fan_in)
            assert conv.weight.abs().max() <= bound
            assert conv.weight.abs().max() > 0.9 * bound
            if conv.bias is not None:
                assert torch.count_nonzero(conv.bias) == 0
        norm = dec.output_convs[0].norm
        assert torch.all(norm.weight == 1) and torch.all(norm.bias == 0)


def test_encoder_variant_matches_mmdet_encoder_decoder(mmdet_scope):
    """With ``encoder`` (mmdet's COCO-panoptic MaskFormer), memory is the
    DETR encoder output over the projected C5 with padded pixels masked,
    exactly as mmdet's TransformerEncoderPixelDecoder computes it."""
    torch.manual_seed(0)
    encoder = dict(num_layers=1, layer_cfg=dict(
        self_attn_cfg=dict(embed_dims=32, num_heads=4, attn_drop=0.0,
                           proj_drop=0.0, batch_first=True),
        ffn_cfg=dict(embed_dims=32, feedforward_channels=64, ffn_drop=0.0)))
    pos = dict(num_feats=16, normalize=True)
    in_channels = [16, 24, 40]
    kw = dict(in_channels=in_channels, feat_channels=32, out_channels=32,
              encoder=encoder, positional_encoding=pos)
    fapn = mmdet_scope.build(dict(type='FaPNPixelDecoder', **kw)).eval()
    stock = mmdet_scope.build(
        dict(type='TransformerEncoderPixelDecoder', **kw)).eval()
    fapn.init_weights()
    stock.encoder.load_state_dict(fapn.encoder.state_dict())
    stock.encoder_in_proj.load_state_dict(fapn.input_proj.state_dict())
    assert fapn.last_feat_conv.conv.in_channels == 32
    feats = [torch.randn(2, c, 27 // s, 35 // s)
             for c, s in zip(in_channels, (1, 2, 4))]
    # image 2 is padded: its right half is outside the image
    metas = [dict(batch_input_shape=(108, 140), img_shape=(108, 140)),
             dict(batch_input_shape=(108, 140), img_shape=(108, 70))]
    with torch.no_grad():
        mask_feature, memory = fapn(feats, metas)
        _, stock_memory = stock(feats, metas)
        _, unpadded = fapn(feats, [metas[0], metas[0]])
    assert tuple(mask_feature.shape) == (2, 32, 27, 35)
    assert tuple(memory.shape) == (2, 32, 6, 8)
    torch.testing.assert_close(memory, stock_memory)
    # the mask matters for the padded image only
    torch.testing.assert_close(memory[0], unpadded[0])
    assert not torch.allclose(memory[1], unpadded[1])
    with pytest.raises(ValueError, match='batch_img_metas'):
        fapn(feats, None)
    with pytest.raises(ValueError, match='embed_dims'):
        FaPNPixelDecoder(in_channels, 64, 32, encoder=encoder)


def test_bad_inputs_raise_clear_errors():
    dec = FaPNPixelDecoder([8, 16, 32], 16, 16,
                           norm_cfg=dict(type='GN', num_groups=4))
    feats = [torch.randn(1, c, s, s) for c, s in ((8, 8), (16, 4), (32, 2))]
    with pytest.raises(ValueError, match='expected 3 feature maps'):
        dec(feats[:2], None)
    with pytest.raises(ValueError, match=r'feats\[1\] has 8 channels'):
        dec([feats[0], feats[0], feats[2]], None)
    with pytest.raises(ValueError, match=r'feats\[2\] must be a 4-D'):
        dec(feats[:2] + [feats[2][0]], None)
    with pytest.raises(TypeError, match='list/tuple'):
        dec(feats[0], None)
    with pytest.raises(TypeError, match='in_channels'):
        FaPNPixelDecoder(256, 256, 256)
    with pytest.raises(TypeError, match='out_channels'):
        FaPNPixelDecoder(R50, 256, 0)


def test_registered_for_mmdet_and_mmseg_configs(mmdet_scope, mmseg_scope):
    from mmengine.registry import init_default_scope
    cfg = dict(in_channels=[8, 16], feat_channels=32, out_channels=32)
    assert isinstance(mmseg_scope.build(
        dict(type='mmdet.FaPNPixelDecoder', **cfg)), FaPNPixelDecoder)
    init_default_scope('mmdet')
    assert isinstance(mmdet_scope.build(dict(type='FaPNPixelDecoder', **cfg)),
                      FaPNPixelDecoder)

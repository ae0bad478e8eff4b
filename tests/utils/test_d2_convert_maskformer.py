"""Conversion of the two released MaskFormer + FaPN checkpoints (Swin-L
ADE20K, R-101 COCO-Stuff-10K) to mmseg (mmfapn.utils.d2_maskformer).

The checkpoints cannot be downloaded here.  The tests fill the key/shape
lists of the official models (``tests/data/d2_keys/*.tsv``, listed from the
models built by FaPN-full's own configs) with random values, convert them,
load them with ``strict=True`` into the models of the ``*_d2-weights.py``
configs, and compare the converted pixel decoder and transformer predictor
(and the ResNet backbone) with forwards written here on detectron2's key
names from the official structure (``BasePixelFANDecoder``, DCNv2,
``TransformerPredictor`` = DETR's post-norm decoder), with an independent
DCNv2.  Swin's patch-merging reorder is checked on tensors whose answer is
known.
"""
import copy
import math
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from d2_synthetic import d2_state_dict_from_key_list, read_key_list

from mmfapn.utils import (D2ConversionError, D2UnsupportedError,
                          convert_d2_checkpoint, convert_d2_state_dict,
                          detect_d2_model)
from mmfapn.utils.d2_convert import (build_target_model, check_against_model,
                                     default_config)
from mmfapn.utils.d2_maskformer import (check_config,
                                        swin_merging_to_unfold_order)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
KEYS = osp.join(REPO, 'tests', 'data', 'd2_keys')
KEY_LISTS = {
    'swin-l': osp.join(KEYS, 'maskformer_swinL_fapn_ade20k_d2_keys.tsv'),
    101: osp.join(KEYS, 'maskformer_r101_fapn_cocostuff_d2_keys.tsv'),
}
CHANNELS = {'swin-l': [192, 384, 768, 1536], 101: [256, 512, 1024, 2048]}
NUM_CLASSES = {'swin-l': 150, 101: 171}
SHARED_GN = {
    f'sem_seg_head.pixel_decoder.align_{k}.offset.norm.{p}'
    for k in (1, 2, 3) for p in ('weight', 'bias')
}


@pytest.fixture(scope='module', params=['swin-l', 101], ids=str)
def released(request):
    """(arch, synthetic detectron2 state dict, converted state, report,
    model of the matching *_d2-weights.py config with it loaded)."""
    arch = request.param
    d2 = d2_state_dict_from_key_list(KEY_LISTS[arch], seed=1)
    state, report = convert_d2_state_dict(d2)
    model, cfg = build_target_model(default_config('maskformer', arch))
    check_against_model(state, model.state_dict(), report)
    check_config(d2, cfg, model, report)
    model.load_state_dict(state, strict=True)
    model.eval()
    return arch, d2, state, report, model


# --------------------------------------------------------------------------
# every key, strict load
# --------------------------------------------------------------------------
def test_key_lists_are_the_released_ones():
    swin = read_key_list(KEY_LISTS['swin-l'])
    r101 = read_key_list(KEY_LISTS[101])
    assert (len(swin), len(r101)) == (523, 686)
    assert swin['sem_seg_head.predictor.class_embed.weight'] == (151, 256)
    assert r101['sem_seg_head.predictor.class_embed.weight'] == (172, 256)
    assert swin['backbone.layers.2.blocks.17.attn.'
                'relative_position_bias_table'] == (529, 24)


def test_released_maskformer_converts_and_loads_strict(released):
    arch, d2, state, report, model = released
    assert detect_d2_model(d2) == ('maskformer', arch, 'seg')
    assert report.unused == []
    assert report.unfilled == []
    assert report.unexpected == []
    assert report.mismatched == []
    assert report.errors == []
    # dropped: exactly the duplicated shared GN and the loss weights
    assert set(report.dropped) == SHARED_GN | {'criterion.empty_weight'}
    assert len(report.mapped) + len(report.dropped) == len(d2)
    target = model.state_dict()
    assert len(target) == len(state)
    # BN num_batches_tracked (FrozenBN has none): one per ResNet BN
    n_bn = sum(k.endswith('running_mean') for k in d2)
    assert len(report.synthesized) == n_bn == (104 if arch == 101 else 0)
    assert len(report.mapped) == {'swin-l': 516, 101: 679}[arch]
    # every value arrives unchanged, except Swin's patch merging (reordered)
    for src, dst in report.mapped.items():
        if '.downsample.' in dst and dst.startswith('backbone.stages'):
            assert not torch.equal(target[dst], d2[src])
            assert torch.equal(target[dst],
                               swin_merging_to_unfold_order(d2[src]))
        else:
            assert torch.equal(target[dst], d2[src]), (src, dst)
    # the parameters of the model are exactly the source's (the shared GN
    # and the index buffers once): the released model's size
    n_params = sum(p.numel() for p in model.parameters())
    n_src = sum(v.numel() for k, v in d2.items()
                if k not in report.dropped
                and not k.endswith(('running_mean', 'running_var',
                                    'relative_position_index')))
    assert n_params == n_src == {
        'swin-l': 215_232_723, 101: 63_962_484}[arch]


def test_report_format(released):
    arch, _, _, report, _ = released
    text = report.format()
    assert text.splitlines()[0].startswith(
        'detectron2 maskformer ' + {'swin-l': 'Swin-L', 101: 'R-101'}[arch]
        + ' -> mmseg')
    assert ('sem_seg_head.pixel_decoder.align_2.offset.norm.weight: shared '
            'GroupNorm: the same GN instance as sem_seg_head.pixel_decoder.'
            'layer_2.norm.weight') in text
    assert 'UNUSED source keys: 0' in text and 'result: OK' in text


# --------------------------------------------------------------------------
# detectron2 forwards on detectron2 key names (official structure)
# --------------------------------------------------------------------------
def _conv(sd, name, x, **kw):
    return F.conv2d(x, sd[name + '.weight'], sd.get(name + '.bias'), **kw)


def _gn(sd, name, x):
    return F.group_norm(x, 32, sd[name + '.weight'], sd[name + '.bias'])


def _d2_pixel_fan_decoder(sd, feats, mdcn):
    """BasePixelFANDecoder.forward_features: layer_4 on res5, then per level
    adapter (1x1 + GN), FeatureAlign without FSM (offset 1x1 + GN on
    cat[lat, 2 * up], DCNv2 with 8 groups, relu, + lat) and layer_k (3x3 +
    GN + relu); the offset conv and layer_k apply the same GN."""
    p = 'sem_seg_head.pixel_decoder.'
    y = F.relu(_gn(sd, p + 'layer_4.norm',
                   _conv(sd, p + 'layer_4', feats[3], padding=1)))
    for k in (3, 2, 1):
        x = feats[k - 1]
        lat = _gn(sd, f'{p}adapter_{k}.norm', _conv(sd, f'{p}adapter_{k}', x))
        up = F.interpolate(y, lat.shape[2:], mode='bilinear',
                           align_corners=False)
        # the GN instance of layer_k, saved under both names
        off_feat = _gn(sd, f'{p}align_{k}.offset.norm',
                       _conv(sd, f'{p}align_{k}.offset',
                             torch.cat([lat, up * 2], 1)))
        dcn = f'{p}align_{k}.dcpack_L2'
        o1, o2, m = torch.chunk(
            _conv(sd, dcn + '.conv_offset_mask', off_feat, padding=1), 3, 1)
        aligned = F.relu(
            mdcn(up, torch.cat([o1, o2], 1), torch.sigmoid(m),
                 sd[dcn + '.weight'], sd[dcn + '.bias'], padding=1,
                 deform_groups=8))
        y = aligned + lat
        y = F.relu(_gn(sd, f'{p}layer_{k}.norm',
                       _conv(sd, f'{p}layer_{k}', y, padding=1)))
    return _conv(sd, p + 'mask_features', y, padding=1)


def _sine_pos(b, h, w, dtype, num_feats=128, temperature=10000):
    """PositionEmbeddingSine(normalize=True) with no mask."""
    ones = torch.ones(b, h, w, dtype=dtype)
    y = ones.cumsum(1)
    x = ones.cumsum(2)
    eps, scale = 1e-6, 2 * math.pi
    y = y / (y[:, -1:, :] + eps) * scale
    x = x / (x[:, :, -1:] + eps) * scale
    dim_t = torch.arange(num_feats, dtype=dtype)
    dim_t = temperature**(2 * torch.div(dim_t, 2, rounding_mode='floor') /
                          num_feats)
    px, py = x[..., None] / dim_t, y[..., None] / dim_t
    px = torch.stack((px[..., 0::2].sin(), px[..., 1::2].cos()), 4).flatten(3)
    py = torch.stack((py[..., 0::2].sin(), py[..., 1::2].cos()), 4).flatten(3)
    return torch.cat((py, px), 3).permute(0, 3, 1, 2)


def _mha(sd, name, q, k, v, heads=8):
    """nn.MultiheadAttention written out; q (Lq, B, C), k/v (Lk, B, C)."""
    w, b = sd[name + '.in_proj_weight'], sd[name + '.in_proj_bias']
    c = q.shape[-1]
    q = F.linear(q, w[:c], b[:c])
    k = F.linear(k, w[c:2 * c], b[c:2 * c])
    v = F.linear(v, w[2 * c:], b[2 * c:])

    def split(t):  # (L, B, C) -> (B, heads, L, C / heads)
        return t.reshape(t.shape[0], t.shape[1], heads, -1).permute(1, 2, 0, 3)

    q, k, v = split(q), split(k), split(v)
    att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(c // heads), -1)
    out = (att @ v).permute(2, 0, 1, 3).reshape(q.shape[2], q.shape[0], c)
    return F.linear(out, sd[name + '.out_proj.weight'],
                    sd[name + '.out_proj.bias'])


def _ln(sd, name, x):
    return F.layer_norm(x, x.shape[-1:], sd[name + '.weight'],
                        sd[name + '.bias'])


def _lin(sd, name, x):
    return F.linear(x, sd[name + '.weight'], sd[name + '.bias'])


def _d2_transformer_predictor(sd, res5, mask_features, num_layers=6):
    """TransformerPredictor.forward (MaskFormer): input_proj of res5, sine
    positions, DETR decoder (post-norm, 0 encoder layers, zero target,
    query positions), the decoder norm on every layer's output, class and
    mask embeddings.  Returns (L, B, Q, K + 1) logits and (L, B, Q, H, W)
    mask logits."""
    p = 'sem_seg_head.predictor.'
    b, _, h, w = res5.shape
    src = _conv(sd, p + 'input_proj', res5)
    memory = src.flatten(2).permute(2, 0, 1)
    pos = _sine_pos(b, h, w, res5.dtype).flatten(2).permute(2, 0, 1)
    query_pos = sd[p + 'query_embed.weight'].unsqueeze(1).repeat(1, b, 1)
    tgt = torch.zeros_like(query_pos)
    outs = []
    for i in range(num_layers):
        lp = f'{p}transformer.decoder.layers.{i}.'
        q = tgt + query_pos
        tgt = _ln(sd, lp + 'norm1', tgt + _mha(sd, lp + 'self_attn', q, q,
                                               tgt))
        tgt = _ln(sd, lp + 'norm2', tgt + _mha(
            sd, lp + 'multihead_attn', tgt + query_pos, memory + pos, memory))
        ffn = _lin(sd, lp + 'linear2', F.relu(_lin(sd, lp + 'linear1', tgt)))
        tgt = _ln(sd, lp + 'norm3', tgt + ffn)
        outs.append(_ln(sd, p + 'transformer.decoder.norm', tgt))
    hs = torch.stack(outs).transpose(1, 2)  # L, B, Q, C
    logits = _lin(sd, p + 'class_embed', hs)
    emb = hs
    for i in range(3):
        emb = _lin(sd, f'{p}mask_embed.layers.{i}', emb)
        if i < 2:
            emb = F.relu(emb)
    masks = torch.einsum('lbqc,bchw->lbqhw', emb, mask_features)
    return logits, masks


def _feats(arch, seed=0):
    g = torch.Generator().manual_seed(seed)
    # a 69 x 93 input: odd sizes at every level
    sizes = [(18, 24), (9, 12), (5, 6), (3, 3)]
    return [torch.randn(2, c, h, w, generator=g, dtype=torch.float64)
            for c, (h, w) in zip(CHANNELS[arch], sizes)]


def test_decoder_and_predictor_equal_the_official_forward(released,
                                                          mdcn_reference):
    from mmseg.structures import SegDataSample
    arch, d2, _, _, model = released
    sd = {k: v.double() for k, v in d2.items()
          if k.startswith('sem_seg_head.')}
    head = copy.deepcopy(model.decode_head).double().eval()
    feats = _feats(arch)
    img_shape = (69, 93)
    samples = [SegDataSample(metainfo=dict(img_shape=img_shape,
                                           batch_input_shape=img_shape))
               for _ in range(2)]
    with torch.no_grad():
        mask_feature, memory = head.pixel_decoder(feats)
        ref_mask_feature = _d2_pixel_fan_decoder(sd, feats, mdcn_reference)
        torch.testing.assert_close(mask_feature, ref_mask_feature,
                                   rtol=1e-9, atol=1e-9)
        cls, masks = head(feats, samples)
        ref_cls, ref_masks = _d2_transformer_predictor(
            sd, feats[3], ref_mask_feature)
        assert cls.shape == (6, 2, 100, NUM_CLASSES[arch] + 1)
        assert masks.shape == (6, 2, 100, 18, 24)
        torch.testing.assert_close(cls, ref_cls, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(masks, ref_masks, rtol=1e-9, atol=1e-9)
        # semantic inference: softmax without "no object" x sigmoid masks
        # at the input size (MaskFormer.semantic_inference)
        seg = head.predict(feats, [dict(s.metainfo) for s in samples],
                           model.test_cfg)
        up = F.interpolate(ref_masks[-1], size=img_shape, mode='bilinear',
                           align_corners=False)
        ref_seg = torch.einsum('bqc,bqhw->bchw',
                               ref_cls[-1].softmax(-1)[..., :-1],
                               up.sigmoid())
        assert seg.shape == (2, NUM_CLASSES[arch], *img_shape)
        torch.testing.assert_close(seg, ref_seg, rtol=1e-9, atol=1e-9)
    # the offsets were not trivially zero
    off = head.pixel_decoder.align_modules[0].dcn.conv_offset.weight
    assert off.abs().max() > 0


def _d2_torchvision_resnet(sd, x, blocks):
    """detectron2 ResNet as MaskFormer's R-101 (STRIDE_IN_1X1 False: the
    stride in the 3x3 conv, basic stem, FrozenBatchNorm2d) on its key
    names (``backbone.stem``, ``backbone.res{s}``); returns res2..res5."""

    def conv_bn(x, name, **kw):
        n = name + '.norm'
        scale = sd[n + '.weight'] * torch.rsqrt(sd[n + '.running_var'] + 1e-5)
        shift = sd[n + '.bias'] - sd[n + '.running_mean'] * scale
        y = F.conv2d(x, sd[name + '.weight'], **kw)
        return y * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)

    x = F.relu(conv_bn(x, 'backbone.stem.conv1', stride=2, padding=3))
    x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
    outs = []
    for i, n in enumerate(blocks):
        for b in range(n):
            name = f'backbone.res{i + 2}.{b}'
            stride = 2 if (b == 0 and i > 0) else 1
            y = F.relu(conv_bn(x, name + '.conv1'))
            y = F.relu(conv_bn(y, name + '.conv2', stride=stride, padding=1))
            y = conv_bn(y, name + '.conv3')
            if name + '.shortcut.weight' in sd:
                x = conv_bn(x, name + '.shortcut', stride=stride)
            x = F.relu(y + x)
        outs.append(x)
    return outs


def test_converted_r101_backbone_equals_detectron2_resnet(released):
    arch, d2, _, _, model = released
    if arch != 101:
        pytest.skip('ResNet only')
    backbone = copy.deepcopy(model.backbone).double()
    backbone.eval()
    sd = {k: v.double() for k, v in d2.items() if k.startswith('backbone.')}
    x = torch.randn(1, 3, 45, 61, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ours = backbone(x)
        ref = _d2_torchvision_resnet(sd, x, (3, 4, 23, 3))
    for a, b in zip(ours, ref):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def _window_partition(x, ws):
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, c)


def _window_reverse(windows, ws, h, w):
    b = windows.shape[0] // (h * w // ws // ws)
    x = windows.view(b, h // ws, w // ws, ws, ws, -1)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, -1)


def _d2_swin(sd, x, depths=(2, 2, 18, 2), heads=(6, 12, 24, 48), ws=12):
    """MaskFormer's D2SwinTransformer forward on its key names: patch
    embedding (4x4, padded right/bottom, LN), per stage shifted-window
    blocks (padded to the window, shift ws // 2 in odd blocks with the -100
    region mask, relative position bias), the per-output norm{i}, and the
    original PatchMerging (x0, x1, x2, x3 concatenation)."""
    p = 'backbone.'
    h, w = x.shape[2:]
    x = F.pad(x, (0, (4 - w % 4) % 4, 0, (4 - h % 4) % 4))
    x = _conv(sd, p + 'patch_embed.proj', x, stride=4)
    b, c, h, w = x.shape
    x = _ln(sd, p + 'patch_embed.norm', x.flatten(2).transpose(1, 2))
    outs = []
    for i, (depth, nh) in enumerate(zip(depths, heads)):
        hp, wp = -(-h // ws) * ws, -(-w // ws) * ws
        shift = ws // 2
        img = torch.zeros(1, hp, wp, 1, dtype=x.dtype)
        cnt = 0
        for hs in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
            for wsl in (slice(0, -ws), slice(-ws, -shift),
                        slice(-shift, None)):
                img[:, hs, wsl] = cnt
                cnt += 1
        mw = _window_partition(img, ws).squeeze(-1)
        mask = (mw.unsqueeze(1) - mw.unsqueeze(2)) != 0
        mask = torch.zeros(mask.shape, dtype=x.dtype).masked_fill(mask, -100.)
        for j in range(depth):
            bp = f'{p}layers.{i}.blocks.{j}.'
            c = x.shape[-1]
            y = _ln(sd, bp + 'norm1', x).view(b, h, w, c)
            y = F.pad(y, (0, 0, 0, wp - w, 0, hp - h))
            s = shift if j % 2 else 0
            if s:
                y = torch.roll(y, (-s, -s), (1, 2))
            win = _window_partition(y, ws)
            n = ws * ws
            qkv = _lin(sd, bp + 'attn.qkv', win).reshape(
                -1, n, 3, nh, c // nh).permute(2, 0, 3, 1, 4)
            q, k, v = qkv[0] * (c // nh)**-0.5, qkv[1], qkv[2]
            att = q @ k.transpose(-2, -1)
            table = sd[bp + 'attn.relative_position_bias_table']
            index = sd[bp + 'attn.relative_position_index'].view(-1)
            att = att + table[index].view(n, n, -1).permute(2, 0, 1)[None]
            if s:
                nw = mask.shape[0]
                att = (att.view(-1, nw, nh, n, n) +
                       mask[None, :, None]).view(-1, nh, n, n)
            win = (att.softmax(-1) @ v).transpose(1, 2).reshape(-1, n, c)
            win = _lin(sd, bp + 'attn.proj', win)
            y = _window_reverse(win, ws, hp, wp)
            if s:
                y = torch.roll(y, (s, s), (1, 2))
            x = x + y[:, :h, :w].reshape(b, h * w, c)
            mlp = _lin(sd, bp + 'mlp.fc2',
                       F.gelu(_lin(sd, bp + 'mlp.fc1',
                                   _ln(sd, bp + 'norm2', x))))
            x = x + mlp
        out = _ln(sd, f'{p}norm{i}', x)
        outs.append(out.view(b, h, w, -1).permute(0, 3, 1, 2))
        if i < len(depths) - 1:
            dp = f'{p}layers.{i}.downsample.'
            t = F.pad(x.view(b, h, w, -1), (0, 0, 0, w % 2, 0, h % 2))
            t = torch.cat([t[:, 0::2, 0::2], t[:, 1::2, 0::2],
                           t[:, 0::2, 1::2], t[:, 1::2, 1::2]], -1)
            h, w = t.shape[1:3]
            x = F.linear(_ln(sd, dp + 'norm', t.view(b, h * w, -1)),
                         sd[dp + 'reduction.weight'])
    return outs


def test_converted_swin_l_backbone_equals_maskformer_swin(released):
    arch, d2, _, _, model = released
    if arch != 'swin-l':
        pytest.skip('Swin only')
    x = torch.randn(1, 3, 50, 70, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        ours = model.backbone(x)
        ref = _d2_swin(d2, x)
    assert [tuple(o.shape[1:]) for o in ours] == [
        (192, 13, 18), (384, 7, 9), (768, 4, 5), (1536, 2, 3)]
    for a, b in zip(ours, ref):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------
# Swin patch merging: original concatenation order vs nn.Unfold
# --------------------------------------------------------------------------
def _swin_patch_merging(x, hw, norm_w, norm_b, reduction):
    """The original Swin PatchMerging on (B, H*W, C) tokens: concatenate
    x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2], LayerNorm,
    linear without bias."""
    b, _, c = x.shape
    h, w = hw
    x = x.view(b, h, w, c)
    x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2],
                   x[:, 1::2, 1::2]], -1).view(b, -1, 4 * c)
    x = F.layer_norm(x, (4 * c, ), norm_w, norm_b)
    return F.linear(x, reduction)


def _mmseg_merging(c, state):
    from mmseg.models.utils.embed import PatchMerging
    m = PatchMerging(c, 2 * c, bias=False).double()
    m.load_state_dict(state, strict=True)
    return m


def test_merging_reorder_on_known_indices():
    # C = 2: original channel (dh + 2 dw) * C + c; unfold c * 4 + 2 dh + dw
    t = torch.arange(8)
    assert swin_merging_to_unfold_order(t).tolist() == [0, 4, 2, 6,
                                                        1, 5, 3, 7]
    w = torch.arange(16).view(2, 8)  # the reduction: rows kept
    assert swin_merging_to_unfold_order(w)[1].tolist() == [
        8, 12, 10, 14, 9, 13, 11, 15]
    with pytest.raises(ValueError, match='not divisible by 4'):
        swin_merging_to_unfold_order(torch.zeros(6))


def test_converted_merging_gives_the_original_output():
    # a 2x2 map, C = 2, value 10 * (2 h + w) + c: the original merge of the
    # one cell is [x00, x10, x01, x11] = [0, 1, 20, 21, 10, 11, 30, 31]
    c = 2
    x = torch.tensor([[10. * (2 * h + w) + ch for ch in range(c)]
                      for h in range(2) for w in range(2)],
                     dtype=torch.float64)[None]
    norm_w = torch.linspace(0.5, 2.0, 4 * c, dtype=torch.float64)
    norm_b = torch.linspace(-1, 1, 4 * c, dtype=torch.float64)
    reduction = torch.zeros(2 * c, 4 * c, dtype=torch.float64)
    reduction[:, :2 * c] = torch.eye(2 * c)  # keeps the first 4 channels
    v = torch.tensor([0., 1, 20, 21, 10, 11, 30, 31], dtype=torch.float64)
    known = ((v - v.mean()) / torch.sqrt(v.var(unbiased=False) + 1e-5)
             * norm_w + norm_b)[:2 * c]
    ref = _swin_patch_merging(x, (2, 2), norm_w, norm_b, reduction)
    torch.testing.assert_close(ref[0, 0], known)

    converted = {
        'reduction.weight': swin_merging_to_unfold_order(reduction),
        'norm.weight': swin_merging_to_unfold_order(norm_w),
        'norm.bias': swin_merging_to_unfold_order(norm_b),
    }
    out, out_hw = _mmseg_merging(c, converted)(x, (2, 2))
    assert out_hw == (1, 1)
    torch.testing.assert_close(out[0, 0], known, rtol=1e-12, atol=1e-12)
    # unconverted weights give another answer: the reorder is needed
    raw = {'reduction.weight': reduction, 'norm.weight': norm_w,
           'norm.bias': norm_b}
    assert not torch.allclose(_mmseg_merging(c, raw)(x, (2, 2))[0][0, 0],
                              known)


def test_converted_merging_random_odd_map():
    g = torch.Generator().manual_seed(0)
    c, hw = 6, (6, 10)
    x = torch.randn(2, hw[0] * hw[1], c, generator=g, dtype=torch.float64)
    nw, nb = (torch.randn(4 * c, generator=g, dtype=torch.float64)
              for _ in range(2))
    red = torch.randn(2 * c, 4 * c, generator=g, dtype=torch.float64)
    ref = _swin_patch_merging(x, hw, nw, nb, red)
    m = _mmseg_merging(c, {
        'reduction.weight': swin_merging_to_unfold_order(red),
        'norm.weight': swin_merging_to_unfold_order(nw),
        'norm.bias': swin_merging_to_unfold_order(nb)})
    out, out_hw = m(x, hw)
    assert out_hw == (3, 5)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------
# checks and errors
# --------------------------------------------------------------------------
@pytest.fixture(scope='module')
def r101_d2():
    return d2_state_dict_from_key_list(KEY_LISTS[101], seed=2)


def test_unequal_shared_gn_copies_fail(tmp_path, r101_d2):
    d2 = dict(r101_d2)
    key = 'sem_seg_head.pixel_decoder.align_2.offset.norm.weight'
    d2[key] = d2[key] + 0.5
    _, report = convert_d2_state_dict(d2)
    assert len(report.errors) == 1
    assert report.errors[0].startswith(
        f'{key} differs from sem_seg_head.pixel_decoder.layer_2.norm.weight')
    src = tmp_path / 'model_final.pth'
    torch.save({'model': d2}, src)
    with pytest.raises(D2ConversionError, match='share_offset_norm=True '
                       'cannot represent two'):
        convert_d2_checkpoint(str(src), str(tmp_path / 'out.pth'))
    assert not (tmp_path / 'out.pth').exists()


def test_loss_weights_and_position_index_checked(tmp_path, r101_d2):
    d2 = dict(r101_d2)
    d2['criterion.empty_weight'] = d2['criterion.empty_weight'].clone()
    d2['criterion.empty_weight'][-1] = 0.2
    src = tmp_path / 'model_final.pth'
    torch.save({'model': d2}, src)
    with pytest.raises(D2ConversionError,
                       match=r'criterion.empty_weight \(172 classes, '
                       r'no-object 0.2\) != loss_cls.class_weight'):
        convert_d2_checkpoint(str(src))


def test_swin_position_index_checked(released):
    arch, d2, state, _, model = released
    if arch != 'swin-l':
        pytest.skip('Swin only')
    from mmengine import Config
    key = 'backbone.layers.1.blocks.0.attn.relative_position_index'
    bad = dict(d2)
    bad[key] = d2[key].flip(0)
    _, report = convert_d2_state_dict(bad)
    cfg = Config.fromfile(default_config('maskformer', arch))
    check_config(bad, cfg, model, report)
    assert report.errors == [
        f'{key} differs from the index mmseg computes for the config\'s '
        'window size'
    ]


def test_unsupported_maskformer_checkpoints(r101_d2):
    base = {k: v for k, v in r101_d2.items()
            if '.align_' not in k}  # MaskFormer's own BasePixelDecoder
    with pytest.raises(D2UnsupportedError,
                       match="not FaPN's BasePixelFANDecoder") as e:
        detect_d2_model(base)
    assert '\n' not in str(e.value)
    enc = dict(r101_d2)
    enc['sem_seg_head.predictor.transformer.encoder.layers.0.linear1.'
        'weight'] = torch.zeros(2048, 256)
    with pytest.raises(D2UnsupportedError, match='transformer encoder'):
        detect_d2_model(enc)
    m2f = {k: v for k, v in r101_d2.items()
           if not k.startswith('sem_seg_head.predictor.transformer.')}
    with pytest.raises(D2UnsupportedError, match='Mask2Former'):
        detect_d2_model(m2f)
    r50 = {k: v for k, v in r101_d2.items()
           if not any(k.startswith(f'backbone.res4.{b}.')
                      for b in range(6, 23))}
    assert detect_d2_model(r50) == ('maskformer', 50, 'seg')
    with pytest.raises(D2UnsupportedError,
                       match='no \\*_d2-weights.py config for a detectron2 '
                       'maskformer R-50 .none was released.; pass --config'):
        default_config('maskformer', 50)
    with pytest.raises(D2UnsupportedError, match='maskformer Swin-B'):
        default_config('maskformer', 'swin-b')


def test_swin_variants_detected():
    shapes = read_key_list(KEY_LISTS['swin-l'])
    keys = {k: torch.zeros(0) for k in shapes}
    keys['backbone.patch_embed.proj.weight'] = torch.zeros(128, 3, 4, 4)
    assert detect_d2_model(keys) == ('maskformer', 'swin-b', 'seg')
    keys['backbone.patch_embed.proj.weight'] = torch.zeros(100, 3, 4, 4)
    with pytest.raises(D2UnsupportedError,
                       match=r'embed dims 100, depths \[2, 2, 18, 2\]'):
        detect_d2_model(keys)

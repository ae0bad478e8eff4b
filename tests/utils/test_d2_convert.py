"""Conversion of detectron2 FaPN checkpoints (mmfapn.utils.d2_convert).

The released checkpoints cannot be downloaded here; the tests use state
dicts with the released key names and shapes
(``d2_fapn_state_dict`` of tests/helpers/d2_synthetic.py) and check the
conversion against the models of the real ``*_d2-weights.py`` configs, and
against forward passes written directly from the official code's structure
on detectron2 key names.
"""
import os.path as osp
import pickle

import pytest
import torch
import torch.nn.functional as F
from d2_synthetic import d2_fapn_state_dict, fapn_neck_to_d2

from mmfapn.utils import (D2ConversionError, convert_d2_checkpoint,
                          convert_d2_state_dict, detect_d2_model,
                          load_d2_checkpoint)
from mmfapn.utils.d2_convert import (D2_WEIGHT_CONFIGS, build_target_model,
                                     check_against_model, default_config)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

RELEASED = [
    ('faster_rcnn', 50), ('faster_rcnn', 101), ('mask_rcnn', 50),
    ('mask_rcnn', 101), ('point_rend', 50), ('panoptic_fpn', 50),
    ('panoptic_fpn', 101), ('point_rend_semantic', 50),
    ('point_rend_semantic', 101)
]


@pytest.fixture(scope='module')
def frcnn_d2():
    """A synthetic released Faster R-CNN R-50 (drawn once: 41M values)."""
    return d2_fapn_state_dict('faster_rcnn', with_buffers=False, seed=3)


def _sub(state, prefix):
    return {k[len(prefix):]: v for k, v in state.items()
            if k.startswith(prefix)}


# --------------------------------------------------------------------------
# every released model: no unused / unfilled keys, strict load
# --------------------------------------------------------------------------
@pytest.mark.parametrize('model_name,depth', RELEASED)
def test_released_models_convert_and_load_strict(model_name, depth):
    d2 = d2_fapn_state_dict(model_name, depth)
    assert detect_d2_model(d2) == (model_name, depth,
                                   'seg' if model_name.endswith('semantic')
                                   else 'det')
    state, report = convert_d2_state_dict(d2)
    model, _ = build_target_model(default_config(model_name, depth))
    check_against_model(state, model.state_dict(), report)
    assert report.unused == []
    assert report.unfilled == []
    assert report.unexpected == []
    assert report.mismatched == []
    # exactly the documented drops, nothing else
    assert set(report.dropped) == {
        k for k in d2 if k.startswith(('pixel_', 'proposal_generator.anchor'))
    }
    assert len(report.mapped) + len(report.dropped) == len(d2)
    model.load_state_dict(state, strict=True)
    # every value arrived unchanged (only the panoptic logits are permuted)
    target = model.state_dict()
    for src, dst in report.mapped.items():
        if dst.startswith('semantic_head.conv_logits'):
            continue
        assert torch.equal(target[dst], d2[src]), (src, dst)
    # and the heads compute what detectron2's heads compute
    model.eval()
    with torch.no_grad():
        _check_heads(model_name, model, d2)


# detectron2 heads, written on detectron2 key names ------------------------
def _d2_conv(sd, name, x, **kw):
    conv = F.conv1d if sd[name + '.weight'].dim() == 3 else F.conv2d
    return conv(x, sd[name + '.weight'], sd.get(name + '.bias'), **kw)


def _d2_sem_seg_fpn_head(sd, prefix, feats):
    """SemSegFPNHead.layers: per level (conv3x3 + GN(32) + ReLU, x2
    bilinear) pairs down to stride 4, summed, then the 1x1 predictor."""
    out = 0
    for s, y in zip((2, 3, 4, 5), feats):
        for k in range(max(1, s - 2)):
            name = f'{prefix}.p{s}.{2 * k}'
            y = F.group_norm(_d2_conv(sd, name, y, padding=1), 32,
                             sd[name + '.norm.weight'],
                             sd[name + '.norm.bias'])
            y = F.relu(y)
            if s > 2:
                y = F.interpolate(y, scale_factor=2, mode='bilinear',
                                  align_corners=False)
        out = out + y
    return _d2_conv(sd, prefix + '.predictor', out)


def _d2_point_head(sd, prefix, fine, coarse, each_layer):
    """StandardPointHead.forward."""
    x = torch.cat((fine, coarse), 1)
    for k in (1, 2, 3):
        x = F.relu(_d2_conv(sd, f'{prefix}.fc{k}', x))
        if each_layer:
            x = torch.cat((x, coarse), 1)
    return _d2_conv(sd, prefix + '.predictor', x)


def _d2_linear(sd, name, x):
    return F.linear(x, sd[name + '.weight'], sd[name + '.bias'])


def _check_heads(model_name, model, d2):
    close = dict(rtol=1e-4, atol=1e-4)
    g = torch.Generator().manual_seed(0)
    fpn = [torch.randn(1, 256, 8 * 2**(3 - i), 12 * 2**(3 - i), generator=g)
           for i in range(4)]  # p2..p5 of a 256 x 384 image
    if model_name == 'point_rend_semantic':
        fpn_head, point_head = model.decode_head
        torch.testing.assert_close(
            fpn_head(fpn),
            _d2_sem_seg_fpn_head(d2, 'sem_seg_head.coarse_sem_seg_head',
                                 fpn), **close)
        fine, coarse = (torch.randn(2, c, 50, generator=g)
                        for c in (256, 19))
        torch.testing.assert_close(
            point_head(fine, coarse),
            _d2_point_head(d2, 'sem_seg_head.point_head', fine, coarse,
                           each_layer=False), **close)
        return
    cls, reg = model.rpn_head.forward_single(fpn[0])
    y = F.relu(_d2_conv(d2, 'proposal_generator.rpn_head.conv', fpn[0],
                        padding=1))
    torch.testing.assert_close(
        cls, _d2_conv(d2, 'proposal_generator.rpn_head.objectness_logits', y),
        **close)
    torch.testing.assert_close(
        reg, _d2_conv(d2, 'proposal_generator.rpn_head.anchor_deltas', y),
        **close)
    rois = torch.randn(3, 256, 7, 7, generator=g)
    cls, reg = model.roi_head.bbox_head(rois)
    y = rois.flatten(1)
    for k in (1, 2):
        y = F.relu(_d2_linear(d2, f'roi_heads.box_head.fc{k}', y))
    torch.testing.assert_close(
        cls, _d2_linear(d2, 'roi_heads.box_predictor.cls_score', y), **close)
    torch.testing.assert_close(
        reg, _d2_linear(d2, 'roi_heads.box_predictor.bbox_pred', y), **close)
    rois = torch.randn(3, 256, 14, 14, generator=g)
    if model_name in ('mask_rcnn', 'panoptic_fpn'):
        y = rois
        for k in range(1, 5):
            y = F.relu(_d2_conv(d2, f'roi_heads.mask_head.mask_fcn{k}', y,
                                padding=1))
        y = F.relu(F.conv_transpose2d(
            y, d2['roi_heads.mask_head.deconv.weight'],
            d2['roi_heads.mask_head.deconv.bias'], stride=2))
        torch.testing.assert_close(
            model.roi_head.mask_head(rois),
            _d2_conv(d2, 'roi_heads.mask_head.predictor', y), **close)
    if model_name == 'point_rend':
        p = 'roi_heads.mask_head.coarse_head'
        y = F.relu(_d2_conv(d2, p + '.reduce_spatial_dim_conv', rois,
                            stride=2)).flatten(1)
        for k in (1, 2):
            y = F.relu(_d2_linear(d2, f'{p}.fc{k}', y))
        torch.testing.assert_close(
            model.roi_head.mask_head(rois),
            _d2_linear(d2, p + '.prediction', y).view(3, 80, 7, 7), **close)
        fine, coarse = (torch.randn(3, c, 20, generator=g) for c in (256, 80))
        torch.testing.assert_close(
            model.roi_head.point_head(fine, coarse),
            _d2_point_head(d2, 'roi_heads.mask_head.point_head', fine, coarse,
                           each_layer=True), **close)
    if model_name == 'panoptic_fpn':
        ours = model.semantic_head(fpn)['seg_preds']
        ref = _d2_sem_seg_fpn_head(d2, 'sem_seg_head', fpn)
        # mmdet: stuff 0..52 then things; detectron2: things then stuff
        torch.testing.assert_close(ours[:, :53], ref[:, 1:], **close)
        torch.testing.assert_close(ours[:, 53], ref[:, 0], **close)


def test_point_rend_old_layout():
    """detectron2 < v0.4 names: mask_coarse_head / mask_point_head with
    coarse_mask_fc{k}; converts to the same keys as the new layout."""
    old, new = (convert_d2_state_dict(
        d2_fapn_state_dict('point_rend', point_rend_layout=layout))
                for layout in ('v1', 'v2'))
    assert old[1].unused == []
    assert list(old[0]) == list(new[0])
    assert any(k.startswith('roi_heads.mask_coarse_head.coarse_mask_fc1')
               for k in old[1].mapped)


def test_panoptic_semantic_logits_things_channel_moved_last():
    d2 = d2_fapn_state_dict('panoptic_fpn')
    state, _ = convert_d2_state_dict(d2)
    for p in ('weight', 'bias'):
        src = d2[f'sem_seg_head.predictor.{p}']
        dst = state[f'semantic_head.conv_logits.{p}']
        assert src.shape[0] == dst.shape[0] == 54
        # detectron2: 0 = things, 1..53 stuff; mmdet: stuff 0..52, things 53
        assert torch.equal(dst[:53], src[1:])
        assert torch.equal(dst[53], src[0])


def test_d2_weights_configs_match_detectron2_inference():
    from mmengine import Config
    # the MaskFormer ones: tests/utils/test_d2_convert_maskformer.py
    fapn_neck = {k: v for k, v in D2_WEIGHT_CONFIGS.items()
                 if k[0] != 'maskformer'}
    assert len(fapn_neck) == len(RELEASED)
    assert len(D2_WEIGHT_CONFIGS) == len(RELEASED) + 2
    for (name, depth), rel in fapn_neck.items():
        cfg = Config.fromfile(osp.join(REPO, 'configs', rel))
        pre = cfg.model.data_preprocessor
        assert pre.mean == [103.530, 116.280, 123.675], rel
        assert pre.std == [1.0, 1.0, 1.0] and pre.bgr_to_rgb is False, rel
        bb = cfg.model.backbone
        assert (bb.type, bb.depth, bb.style) == ('ResNet', depth, 'caffe')
        assert bb.norm_cfg == dict(type='BN', requires_grad=False)
        assert bb.norm_eval is True and bb.init_cfg is None
        assert cfg.model.neck.type == 'FaPN'
        resize = [t for t in cfg.test_dataloader.dataset.pipeline
                  if t.type == 'Resize']
        if name == 'point_rend_semantic':
            assert resize[0].scale == (2048, 1024)
            assert cfg.model.test_cfg.subdivision_num_points == 8192
            assert cfg.model.decode_head[1].coarse_pred_each_layer is False
            assert cfg.model.decode_head[0].norm_cfg.type == 'GN'
            continue
        assert resize[0].scale == (1333, 800), rel
        rpn, rcnn = cfg.model.test_cfg.rpn, cfg.model.test_cfg.rcnn
        assert (rpn.nms_pre, rpn.max_per_img, rpn.nms.iou_threshold) == (
            1000, 1000, 0.7)
        assert rcnn.nms.iou_threshold == 0.5
        assert rcnn.nms.get('class_agnostic', False) is False
        assert rcnn.max_per_img == 100
        # detectron2 SCORE_THRESH_TEST 0.05; panoptic merge threshold 0.5
        assert rcnn.score_thr == (0.5 if name == 'panoptic_fpn' else 0.05)


# --------------------------------------------------------------------------
# neck: round trip and the released forward
# --------------------------------------------------------------------------
def _random_fapn(seed):
    from mmfapn.models import FaPN
    torch.manual_seed(seed)
    neck = FaPN([256, 512, 1024, 2048], 256, num_outs=5).double().eval()
    with torch.no_grad():
        for m in neck.align_modules:  # non-zero offsets and masks
            m.dcn.conv_offset.weight.normal_(0, 0.02)
            m.dcn.conv_offset.bias.uniform_(-1, 1)
    return neck


def _feats(seed=0):
    g = torch.Generator().manual_seed(seed)
    # odd sizes (a 59 x 91 input)
    return [
        torch.randn(1, c, h, w, generator=g, dtype=torch.float64)
        for c, (h, w) in zip([256, 512, 1024, 2048],
                             [(15, 23), (8, 12), (4, 6), (2, 3)])
    ]


def _with_neck(d2, d2_neck):
    """The full detectron2 checkpoint ``d2`` with ``d2_neck`` as neck."""
    d2 = dict(d2)
    neck_keys = [k for k in d2 if k.startswith(('backbone.fan_align',
                                                'backbone.fpn_output'))]
    assert sorted(neck_keys) == sorted(d2_neck)  # released names and shapes
    for k in neck_keys:
        assert d2[k].shape == d2_neck[k].shape, k
    d2.update(d2_neck)
    return d2


def test_neck_round_trip_gives_identical_outputs(frcnn_d2):
    src = _random_fapn(seed=1)
    d2 = _with_neck(frcnn_d2, fapn_neck_to_d2(src.state_dict()))
    state, report = convert_d2_state_dict(d2)
    assert report.unused == []
    dst = _random_fapn(seed=2)
    dst.load_state_dict(_sub(state, 'neck.'), strict=True)
    feats = _feats()
    with torch.no_grad():
        before = src(feats)
        assert not torch.equal(_random_fapn(seed=2)(feats)[0], before[0])
        after = dst(feats)
    assert len(after) == 5
    for a, b in zip(before, after):
        assert torch.equal(a, b)


def _released_fan_forward(sd, feats, mdcn):
    """FAN.forward of the official fan.py, on detectron2 key names."""

    def conv(x, name, **kw):
        return F.conv2d(x, sd[name + '.weight'], sd.get(name + '.bias'), **kw)

    def fsm(x, name):
        atten = torch.sigmoid(
            conv(F.avg_pool2d(x, x.shape[2:]), name + '.conv_atten'))
        return conv(x + x * atten, name + '.conv')

    def dcn(x, offset_feat, name):
        o1, o2, mask = torch.chunk(
            conv(offset_feat, name + '.conv_offset_mask', padding=1), 3, 1)
        return mdcn(x, torch.cat((o1, o2), 1), torch.sigmoid(mask),
                    sd[name + '.weight'], sd[name + '.bias'], padding=1,
                    deform_groups=8)

    prev = conv(feats[3], 'backbone.fan_align5')
    results = [prev]
    for s, x in zip((4, 3, 2), feats[2::-1]):
        up = F.interpolate(prev, x.shape[2:], mode='bilinear',
                           align_corners=False)
        arm = fsm(x, f'backbone.fan_align{s}.lateral_conv')
        offset = conv(torch.cat([arm, up * 2], 1),
                      f'backbone.fan_align{s}.offset')
        prev = F.relu(dcn(up, offset, f'backbone.fan_align{s}.dcpack_L2')) \
            + arm
        results.insert(0, conv(prev, f'backbone.fpn_output{s}', padding=1))
    results.append(F.max_pool2d(results[-1], kernel_size=1, stride=2))
    return results


def test_converted_neck_matches_released_fan_forward(frcnn_d2,
                                                    mdcn_reference):
    d2 = {k: v.double() for k, v in frcnn_d2.items()}
    state, _ = convert_d2_state_dict(d2)
    neck = _random_fapn(seed=0)
    neck.load_state_dict(_sub(state, 'neck.'), strict=True)
    feats = _feats(seed=4)
    with torch.no_grad():
        ours = neck(feats)
        ref = _released_fan_forward(d2, feats, mdcn_reference)
        offsets = F.conv2d(
            torch.ones(1, 256, 3, 3, dtype=torch.float64),
            d2['backbone.fan_align2.dcpack_L2.conv_offset_mask.weight'])
    assert offsets.abs().max() > 0.5  # the offsets really move samples
    for a, b in zip(ours, ref):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_fapn_neck_to_d2_rejects_keys_the_release_lacks():
    from mmfapn.models import FaPN
    neck = FaPN([8, 16], 8, num_outs=3, add_extra_convs='on_input',
                deform_groups=1)
    with pytest.raises(D2ConversionError, match='extra_convs.0.conv.weight'):
        fapn_neck_to_d2(neck.state_dict())


# --------------------------------------------------------------------------
# backbone: detectron2's MSRA ResNet with FrozenBN
# --------------------------------------------------------------------------
def _d2_resnet_forward(sd, x, blocks):
    """detectron2 ResNet (STRIDE_IN_1X1, FrozenBatchNorm2d v3) on its key
    names; returns res2..res5."""

    def frozen_bn(x, name):
        scale = sd[name + '.weight'] * torch.rsqrt(
            sd[name + '.running_var'] + 1e-5)
        shift = sd[name + '.bias'] - sd[name + '.running_mean'] * scale
        return x * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)

    def conv_bn(x, name, **kw):
        return frozen_bn(F.conv2d(x, sd[name + '.weight'], **kw),
                         name + '.norm')

    p = 'backbone.bottom_up.'
    x = F.relu(conv_bn(x, p + 'stem.conv1', stride=2, padding=3))
    x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
    outs = []
    for i, n in enumerate(blocks):
        for b in range(n):
            name = f'{p}res{i + 2}.{b}'
            stride = 2 if (b == 0 and i > 0) else 1
            y = F.relu(conv_bn(x, name + '.conv1', stride=stride))
            y = F.relu(conv_bn(y, name + '.conv2', padding=1))
            y = conv_bn(y, name + '.conv3')
            if name + '.shortcut.weight' in sd:
                x = conv_bn(x, name + '.shortcut', stride=stride)
            x = F.relu(y + x)
        outs.append(x)
    return outs


def test_converted_backbone_matches_detectron2_resnet(frcnn_d2):
    from mmengine.registry import init_default_scope
    from mmdet.registry import MODELS
    from mmengine import Config
    init_default_scope('mmdet')
    cfg = Config.fromfile(osp.join(REPO, 'configs', D2_WEIGHT_CONFIGS[
        ('faster_rcnn', 50)]))
    backbone = MODELS.build(cfg.model.backbone).double()
    backbone.eval()  # mmdet's ResNet.train() returns None: no chaining
    d2 = {k: v.double() for k, v in frcnn_d2.items()}
    state, _ = convert_d2_state_dict(d2)
    backbone.load_state_dict(_sub(state, 'backbone.'), strict=True)
    x = torch.randn(1, 3, 59, 91, dtype=torch.float64)
    with torch.no_grad():
        ours = backbone(x)
        ref = _d2_resnet_forward(d2, x, (3, 4, 6, 3))
    for a, b in zip(ours, ref):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


# --------------------------------------------------------------------------
# loading and bad input
# --------------------------------------------------------------------------
def test_load_pth_and_numpy_pkl(tmp_path, frcnn_d2):
    d2 = dict(list(frcnn_d2.items())[:40])  # loading needs no full model
    pth = tmp_path / 'model_final.pth'
    torch.save({'model': d2, 'iteration': 89999}, pth)
    loaded = load_d2_checkpoint(str(pth))
    assert list(loaded) == list(d2)
    assert all(torch.equal(loaded[k], d2[k]) for k in d2)
    # detectron2 model-zoo .pkl: numpy arrays plus metadata
    pkl = tmp_path / 'model_final.pkl'
    with open(pkl, 'wb') as f:
        pickle.dump({'model': {k: v.numpy() for k, v in d2.items()},
                     '__author__': 'FaPN'}, f)
    loaded = load_d2_checkpoint(str(pkl))
    assert all(torch.equal(loaded[k], d2[k]) for k in d2)


class _Evil:

    def __reduce__(self):
        return (print, ('pwned', ))


def test_load_refuses_code_in_pickles(tmp_path):
    pkl = tmp_path / 'evil.pkl'
    with open(pkl, 'wb') as f:
        pickle.dump({'model': {'x': _Evil()}}, f)
    with pytest.raises(D2ConversionError, match='refusing to unpickle'):
        load_d2_checkpoint(str(pkl))
    pth = tmp_path / 'evil.pth'
    torch.save({'model': {}, 'x': _Evil()}, pth)
    with pytest.raises(D2ConversionError, match='--trust-pickle'):
        load_d2_checkpoint(str(pth))


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        load_d2_checkpoint(str(tmp_path / 'missing.pth'))
    bad = tmp_path / 'list.pth'
    torch.save([1, 2], bad)
    with pytest.raises(D2ConversionError, match='holds a list'):
        load_d2_checkpoint(str(bad))


def test_detect_errors(frcnn_d2):
    d2 = frcnn_d2
    fpn = {k.replace('fan_align', 'fpn_lateral'): v for k, v in d2.items()
           if not k.startswith('backbone.fpn_output')}
    with pytest.raises(D2ConversionError, match='plain FPN'):
        detect_d2_model(fpn)
    with pytest.raises(D2ConversionError, match='no backbone.bottom_up'):
        detect_d2_model({'backbone.res2.0.conv1.weight': torch.zeros(1)})
    r34 = {k: v for k, v in d2.items()
           if not k.startswith('backbone.bottom_up.res4.5.')}
    with pytest.raises(D2ConversionError, match='res4 has 5 blocks'):
        detect_d2_model(r34)
    with pytest.raises(D2ConversionError, match='does not match'):
        convert_d2_state_dict(d2, task='seg')
    with pytest.raises(ValueError, match="got 'both'"):
        convert_d2_state_dict(d2, task='both')


def test_unused_and_unfilled_keys_fail_with_a_report(tmp_path):
    d2 = d2_fapn_state_dict('faster_rcnn')
    d2['roi_heads.box_head.fc3.weight'] = torch.zeros(1024, 1024)
    del d2['backbone.fpn_output3.bias']
    d2['pixel_std'] = torch.tensor([57.4, 57.1, 58.4]).view(3, 1, 1)
    src = tmp_path / 'bad.pth'
    torch.save({'model': d2}, src)
    dst = tmp_path / 'out.pth'
    with pytest.raises(D2ConversionError) as e:
        convert_d2_checkpoint(str(src), str(dst))
    msg = str(e.value)
    assert 'UNUSED source keys: 1\n    roi_heads.box_head.fc3.weight' in msg
    assert 'UNFILLED target keys: 1\n    neck.fpn_convs.1.conv.bias' in msg
    assert 'pixel_std [57.4' in msg and 'data_preprocessor.std' in msg
    assert 'result: FAILED' in msg
    assert not dst.exists()


def test_shape_mismatch_is_reported(tmp_path):
    d2 = d2_fapn_state_dict('faster_rcnn', num_classes=20)  # VOC-sized
    src = tmp_path / 'voc.pth'
    torch.save({'model': d2}, src)
    with pytest.raises(D2ConversionError) as e:
        convert_d2_checkpoint(str(src), str(tmp_path / 'out.pth'))
    assert ('roi_head.bbox_head.fc_cls.weight: (21, 1024) vs (81, 1024)'
            in str(e.value))


def test_no_config_for_unreleased_model():
    with pytest.raises(D2ConversionError, match='point_rend R-101'):
        default_config('point_rend', 101)


def test_converted_point_rend_semantic_loads_with_init_model(tmp_path):
    """The converted file carries the test dataset's classes and palette
    in ``meta['dataset_meta']``, so mmseg's ``init_model`` (which fails on
    PointRend without them) loads it."""
    from mmseg.apis import init_model
    from mmseg.datasets import CityscapesDataset

    src, dst = tmp_path / 'model_final.pth', tmp_path / 'converted.pth'
    torch.save({'model': d2_fapn_state_dict('point_rend_semantic',
                                            with_buffers=False)}, src)
    report = convert_d2_checkpoint(str(src), str(dst))
    meta = torch.load(dst, weights_only=True)['meta']['dataset_meta']
    assert meta['classes'] == CityscapesDataset.METAINFO['classes']
    assert len(meta['palette']) == 19
    model = init_model(report.config, str(dst), device='cpu')
    assert model.dataset_meta['classes'] == meta['classes']

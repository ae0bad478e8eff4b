"""MaskFormer + FaPN configs for mmseg (paper Table 7): they load, build,
differ from the stock MaskFormer only by FaPN's pixel decoder, and run
loss()/predict() on small odd-sized batches of synthetic scenes."""
import math

import numpy as np
import pytest
import torch

from mmfapn.datasets import render_scene

R50 = [256, 512, 1024, 2048]
SWIN_L = [192, 384, 768, 1536]
FAM = 2 * 256 * 256 + (256 * 256 * 9 + 256) + (256 * 216 * 9 + 216)
# 3 FAMs: the memory projection moves from mmdet's head (decoder_input_proj,
# built for the stock PixelDecoder only) into FaPNPixelDecoder (input_proj)
FAPN_MINUS_STOCK = 3 * FAM
DECODER_PARAMS = {'r50': 11_722_120, 'swin-l': 10_296_712}  # hand counts:
# tests/models/pixel_decoders/test_maskformer_fapn_pixel_decoder.py

ADE_R50 = 'maskformer/maskformer_r50_fapn_8xb2-160k_ade20k-512x512.py'
ADE_R101 = 'maskformer/maskformer_r101_fapn_8xb2-160k_ade20k-512x512.py'
STUFF_R101 = ('maskformer/'
              'maskformer_r101_fapn_8xb4-60k_coco-stuff10k-640x640.py')
ADE_SWIN_L = 'maskformer/maskformer_swin-l_fapn_8xb2-160k_ade20k-640x640.py'
STOCK = {
    ADE_R50:
    'mmseg::maskformer/maskformer_r50-d32_8xb2-160k_ade20k-512x512.py',
    ADE_R101:
    'mmseg::maskformer/maskformer_r101-d32_8xb2-160k_ade20k-512x512.py',
    STUFF_R101:
    'mmseg::maskformer/maskformer_r101-d32_8xb2-160k_ade20k-512x512.py',
}
NUM_CLASSES = {ADE_R50: 150, ADE_R101: 150, STUFF_R101: 171}


def scene_batch(sizes, num_classes, seed=0):
    """Synthetic scenes as a dataloader gives them: BGR uint8 (3, H, W)
    images and SegDataSamples (background class 0, objects 1..5, a strip of
    ignored pixels)."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    inputs, samples = [], []
    for k, (h, w) in enumerate(sizes):
        scene = render_scene(h, w, num_classes=5, seed=seed + k,
                             background=255)
        label = np.where(scene.semantic == 255, 0, scene.semantic + 1)
        label[:, :2] = 255
        assert label[label != 255].max() < num_classes
        inputs.append(torch.from_numpy(
            scene.image[..., ::-1].transpose(2, 0, 1).copy()))
        sample = SegDataSample(metainfo=dict(
            img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
        sample.gt_sem_seg = PixelData(
            data=torch.from_numpy(label[None].astype(np.int64)))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def build(cfg, odd_sizes=False):
    """Build ``cfg.model`` with nothing downloaded and SyncBN reverted to BN
    (as the Runner does when not distributed).  Construction already applies
    the released init of the FaPN decoder; ``init_weights()`` is left out
    (on 2 CPU cores its logging alone takes seconds per model).
    ``odd_sizes``: pad a batch only to its largest image."""
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg.model.backbone.init_cfg = None
    if odd_sizes:
        cfg.model.data_preprocessor.size = None
        cfg.model.data_preprocessor.size_divisor = 1
    return revert_sync_batchnorm(MODELS.build(cfg.model))


@pytest.mark.parametrize('config', sorted(STOCK))
def test_only_the_pixel_decoder_differs(config, seg_config, count_params):
    from mmfapn.models.pixel_decoders import FaPNPixelDecoder
    fapn = build(seg_config(config))
    stock = build(seg_config(STOCK[config]))
    head, stock_head = fapn.decode_head, stock.decode_head
    assert isinstance(head.pixel_decoder, FaPNPixelDecoder)
    assert type(stock_head.pixel_decoder).__name__ == 'PixelDecoder'
    # the decoder projects the memory itself; the head adds nothing
    assert isinstance(head.decoder_input_proj, torch.nn.Identity)
    assert count_params(stock_head.decoder_input_proj) == count_params(
        head.pixel_decoder.input_proj) == 2048 * 256 + 256
    assert count_params(head.pixel_decoder) == DECODER_PARAMS['r50']
    assert count_params(fapn.backbone) == count_params(stock.backbone)
    assert count_params(head.transformer_decoder) == count_params(
        stock_head.transformer_decoder)
    extra_classes = NUM_CLASSES[config] - 150  # COCO-Stuff: 171 classes
    assert count_params(fapn) - count_params(stock) == \
        FAPN_MINUS_STOCK + extra_classes * (256 + 1)
    print(f'{config}: {count_params(fapn):,} params (stock MaskFormer '
          f'{count_params(stock):,})')


@pytest.mark.parametrize('config', sorted(STOCK))
def test_loss_and_predict_on_odd_sizes(config, seg_config):
    torch.manual_seed(0)
    model = build(seg_config(config), odd_sizes=True)
    num_classes = model.decode_head.num_classes
    assert num_classes == NUM_CLASSES[config]
    model.train()
    data = model.data_preprocessor(
        scene_batch([(61, 93), (53, 90)], num_classes), training=True)
    assert tuple(data['inputs'].shape) == (2, 3, 61, 93)
    losses = model.loss(**data)
    terms = {k: v for k, v in losses.items() if 'loss' in k}
    # class, mask (focal) and dice losses for the last decoder layer and the
    # 5 auxiliary ones
    assert {'decode.loss_cls', 'decode.loss_mask', 'decode.loss_dice',
            'decode.d4.loss_dice'} <= set(terms)
    for k, v in terms.items():
        assert torch.isfinite(v) and v.item() > 0, (k, v)
    sum(terms.values()).backward()
    decoder = model.decode_head.pixel_decoder
    for fam in decoder.align_modules:
        # the zero-initialised offset/mask conv gets gradient (the 1x1
        # fusion before it only from the 2nd step: its output is multiplied
        # by that zero weight)
        for p in (fam.dcn.weight, fam.dcn.conv_offset.weight,
                  fam.dcn.conv_offset.bias):
            assert p.grad is not None and p.grad.abs().sum() > 0

    model.eval()
    sizes = [(45, 77), (45, 77)]
    with torch.no_grad():
        data = model.data_preprocessor(
            scene_batch(sizes, num_classes, seed=7), training=False)
        results = model.predict(**data)
    assert len(results) == 2
    for res, (h, w) in zip(results, sizes):
        pred = res.pred_sem_seg.data
        assert tuple(pred.shape) == (1, h, w)
        assert 0 <= pred.min() and pred.max() < num_classes
        assert tuple(res.seg_logits.data.shape) == (num_classes, h, w)


def test_swin_l_config(seg_config, count_params):
    """Built (not trained: CPU). Swin-L in22k-384 as mmseg configures it;
    its real features through the FaPN decoder keep strides 4 and 32."""
    from mmfapn.models.pixel_decoders import FaPNPixelDecoder
    cfg = seg_config(ADE_SWIN_L)
    backbone = cfg.model.backbone
    assert backbone.type == 'SwinTransformer'
    assert (backbone.embed_dims, backbone.depths, backbone.num_heads,
            backbone.window_size, backbone.pretrain_img_size) == (
                192, [2, 2, 18, 2], [6, 12, 24, 48], 12, 384)
    assert 'swin_large_patch4_window12_384_22k' in \
        backbone.init_cfg.checkpoint
    assert cfg.model.data_preprocessor.size == (640, 640)
    crops = [t for t in cfg.train_dataloader.dataset.pipeline
             if t.type == 'RandomCrop']
    assert crops[0].crop_size == (640, 640)
    model = build(cfg)
    head = model.decode_head
    assert isinstance(head.pixel_decoder, FaPNPixelDecoder)
    assert count_params(head.pixel_decoder) == DECODER_PARAMS['swin-l']
    print(f'{ADE_SWIN_L}: {count_params(model):,} params (Swin-L backbone '
          f'{count_params(model.backbone):,})')
    model.eval()
    h, w = 67, 91
    with torch.no_grad():
        feats = model.backbone(torch.randn(1, 3, h, w))
        assert [f.shape[1] for f in feats] == SWIN_L
        mask_feature, memory = head.pixel_decoder(feats, None)
    assert tuple(mask_feature.shape) == (1, 256, math.ceil(h / 4),
                                         math.ceil(w / 4))
    assert tuple(memory.shape) == (1, 256, math.ceil(h / 32),
                                   math.ceil(w / 32))


def test_coco_stuff_recipe(seg_config):
    """Released FaPN-full recipe (maskformer_R101+FaPN_bs32_60k): batch 32,
    60k iterations, AdamW 1e-4, 640 crops; mmseg's COCO-Stuff-10K data."""
    cfg = seg_config(STUFF_R101)
    assert cfg.train_dataloader.batch_size * 8 == 32
    assert cfg.train_cfg.max_iters == 60000
    (poly, ) = cfg.param_scheduler
    assert poly.type == 'PolyLR' and poly.end == 60000
    assert cfg.optim_wrapper.optimizer.lr == 1e-4
    for loader in (cfg.train_dataloader, cfg.val_dataloader,
                   cfg.test_dataloader):
        assert loader.dataset.type == 'COCOStuffDataset'
        assert loader.dataset.reduce_zero_label is True
    assert cfg.test_dataloader.dataset.data_prefix.img_path == \
        'images/test2014'
    head = cfg.model.decode_head
    assert head.num_classes == 171
    assert head.loss_cls.class_weight == [1.0] * 171 + [0.1]
    assert cfg.model.data_preprocessor.size == (640, 640)


def test_metafiles_index_every_maskformer_config():
    """mim's model index lists both metafiles; every config has an entry
    named after it, and the only results are the paper's Table 7 numbers."""
    import glob
    import os.path as osp

    import yaml
    repo = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))))
    index = yaml.safe_load(open(osp.join(repo, 'model-index.yml')))
    results = {}
    for folder in ('configs/seg/maskformer', 'configs/det/maskformer'):
        assert f'{folder}/metafile.yml' in index['Import']
        meta = yaml.safe_load(open(osp.join(repo, folder, 'metafile.yml')))
        names = {m['Name']: m for m in meta['Models']}
        configs = {osp.basename(p)[:-3]
                   for p in glob.glob(osp.join(repo, folder, '*.py'))}
        assert set(names) == configs
        for name, model in names.items():
            assert model['Config'] == f'{folder}/{name}.py'
            assert 'Weights' not in model  # no checkpoint exists
            for res in model.get('Results', []):
                results[name] = res['Metrics']
    swin_l = {'mIoU': 55.2, 'mIoU(ms+flip)': 56.7}
    r101 = {'mIoU': 39.6, 'mIoU(ms+flip)': 40.6}
    assert results == {
        'maskformer_swin-l_fapn_8xb2-160k_ade20k-640x640': swin_l,
        'maskformer_swin-l_fapn_8xb2-160k_ade20k-640x640_d2-weights': swin_l,
        'maskformer_r101_fapn_8xb4-60k_coco-stuff10k-640x640': r101,
        'maskformer_r101_fapn_8xb4-60k_coco-stuff10k-640x640_d2-weights':
        r101,
    }


D2_WEIGHTS = {
    'swin-l': ADE_SWIN_L[:-3] + '_d2-weights.py',
    101: STUFF_R101[:-3] + '_d2-weights.py',
}


@pytest.mark.parametrize('arch', ['swin-l', 101], ids=str)
def test_d2_weights_configs_are_the_released_inference(arch, seg_config):
    """The *_d2-weights configs: the training config's model with the
    released inference setting (FaPN-full MaskFormer yamls): RGB ImageNet
    mean/std, shorter side 640 / longer <= 2560, TEST.AUG sizes 320..1120
    (max 4480) with flip, 100 queries, 6 decoder layers, the shared GN,
    whole-image inference, nothing initialised from ImageNet."""
    from mmfapn.utils.d2_convert import D2_WEIGHT_CONFIGS
    assert D2_WEIGHT_CONFIGS[('maskformer', arch)] == 'seg/' + \
        D2_WEIGHTS[arch]
    cfg = seg_config(D2_WEIGHTS[arch])
    base = seg_config(ADE_SWIN_L if arch == 'swin-l' else STUFF_R101)
    pre = cfg.model.data_preprocessor
    assert (pre.mean, pre.std, pre.bgr_to_rgb, pre.pad_val) == (
        [123.675, 116.28, 103.53], [58.395, 57.12, 57.375], True, 0)
    (resize, ) = [t for t in cfg.test_dataloader.dataset.pipeline
                  if t.type == 'Resize']
    assert (resize.scale, resize.keep_ratio) == ((2560, 640), True)
    scales = [t.scale for t in cfg.tta_pipeline[1].transforms[0]]
    assert scales == [(4480, s) for s in (320, 480, 640, 800, 960, 1120)]
    assert [t.prob for t in cfg.tta_pipeline[1].transforms[1]] == [0., 1.]
    head = cfg.model.decode_head
    assert head.num_queries == 100
    assert head.transformer_decoder.num_layers == 6
    assert head.pixel_decoder.type == 'mmdet.FaPNPixelDecoder'
    assert head.pixel_decoder.share_offset_norm is True
    assert head.num_classes == {'swin-l': 150, 101: 171}[arch]
    assert cfg.model.test_cfg.mode == 'whole'
    assert cfg.model.backbone.init_cfg is None
    bb = cfg.model.backbone
    if arch == 101:
        assert (bb.type, bb.depth, bb.style) == ('ResNet', 101, 'pytorch')
        assert bb.norm_cfg == dict(type='BN', requires_grad=False)
        assert bb.norm_eval is True
        assert bb.get('deep_stem', False) is False  # basic 7x7 stem
    else:
        assert (bb.type, bb.embed_dims, bb.depths, bb.num_heads,
                bb.window_size) == ('SwinTransformer', 192, [2, 2, 18, 2],
                                    [6, 12, 24, 48], 12)
        assert bb.get('use_abs_pos_embed', False) is False
        assert bb.get('patch_norm', True) is True
    # everything else is the training config's model
    for key in ('decode_head', 'backbone'):
        ours, theirs = cfg.model[key].to_dict(), base.model[key].to_dict()
        for k in ('init_cfg', 'norm_cfg', 'norm_eval', 'style'):
            ours.pop(k, None), theirs.pop(k, None)
        if key == 'decode_head':
            ours['pixel_decoder'].pop('share_offset_norm')
        assert ours == theirs, key

"""FCOS, ATSS, GFL (single-stage) and Cascade Mask R-CNN with FaPN: each is
its stock mmdet config with only the neck changed, adds exactly FaPN's
parameters over FPN, trains (finite losses reaching every FAM offset conv)
and predicts well-formed results; FCOS also runs ``mim train`` and ``mim
test`` end to end on generated COCO data."""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch

CONFIG_ROOT = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(
        __file__))))), 'configs', 'det')
REPO = osp.dirname(osp.dirname(CONFIG_ROOT))
# Single-stage pyramids start at C3 (FAMs on C4, C3) with P6/P7 from convs
# on the top output ('on_output'): the same extra convs in FPN and FaPN,
# so the delta is RetinaNet's (2,202,328 + 3,119,832 + 524,544 for the C3,
# C4 FAM levels and the C5 lateral, minus FPN's 3 laterals and 3 output
# convs).  Cascade Mask R-CNN: the four-level neck delta, 7,786,888 -
# 3,344,384.
TWO_LEVELS = 3_158_192
FOUR_LEVELS = 4_442_504
CONFIGS = {
    'fcos/fcos_r50-caffe_fapn_gn-head_1x_coco.py':
    ('mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py', TWO_LEVELS,
     35_453_514),
    'atss/atss_r50_fapn_1x_coco.py':
    ('mmdet::atss/atss_r50_fpn_1x_coco.py', TWO_LEVELS, 35_453_514),
    'gfl/gfl_r50_fapn_1x_coco.py':
    ('mmdet::gfl/gfl_r50_fpn_1x_coco.py', TWO_LEVELS, 35_598_729),
    'cascade_rcnn/cascade-mask-rcnn_r50_fapn_1x_coco.py':
    ('mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py',
     FOUR_LEVELS, 81_767_110),
}
LOSSES = {
    'fcos': {'loss_cls', 'loss_bbox', 'loss_centerness'},
    'atss': {'loss_cls', 'loss_bbox', 'loss_centerness'},
    'gfl': {'loss_cls', 'loss_bbox', 'loss_dfl'},
    'cascade_rcnn': {'loss_rpn_cls', 'loss_rpn_bbox'} | {
        f's{i}.{k}' for i in range(3)
        for k in ('loss_cls', 'loss_bbox', 'loss_mask')},
}
PLUGIN_KEYS = dict(
    custom_imports=dict(imports=['mmfapn', 'mmfapn.engine.harden'],
                        allow_failed_imports=False),
    runner_type='DataCheckedRunner')


@pytest.fixture(scope='module')
def full_models():
    """Each FaPN config and its stock base as full R-50 models (built once,
    no weights, not initialised: the counts do not depend on the init)."""
    from mmengine import Config

    from mmfapn.analysis.coverage import build_model, load_stock_config
    models = {}
    for config, (stock, _, _) in CONFIGS.items():
        fapn = Config.fromfile(osp.join(CONFIG_ROOT, config))
        models[config] = tuple(
            build_model('mmdet', dict(cfg.model, backbone=dict(
                cfg.model.backbone, init_cfg=None)), init=False)
            for cfg in (fapn, load_stock_config(stock)))
    return models


def _count(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize('config', sorted(CONFIGS))
def test_only_the_neck_differs_from_stock(config, det_config,
                                          det_stock_base, det_stock_config):
    assert det_stock_base(config) == CONFIGS[config][0]
    fapn = det_config(config).to_dict()
    stock = det_stock_config(CONFIGS[config][0]).to_dict()
    for key, value in PLUGIN_KEYS.items():
        assert fapn.pop(key) == value
        assert key not in stock
    assert stock['model']['neck'].pop('type') == 'FPN'
    assert fapn['model']['neck'].pop('type') == 'FaPN'
    assert fapn == stock


@pytest.mark.parametrize('config', sorted(CONFIGS))
def test_param_delta_over_stock(config, full_models):
    fapn, stock = full_models[config]
    _, delta, total = CONFIGS[config]
    assert type(fapn.neck).__name__ == 'FaPN'
    assert type(stock.neck).__name__ == 'FPN'
    assert _count(fapn) == total
    assert _count(fapn) - _count(stock) == delta
    # all of it in the neck: heads and backbone are the stock ones
    assert _count(fapn.neck) - _count(stock.neck) == delta
    assert len(fapn.neck.align_modules) == (
        3 if delta == FOUR_LEVELS else 2)
    extra = [tuple(m.conv.weight.shape) for m in fapn.neck.extra_convs]
    stock_extra = [tuple(m.conv.weight.shape) for m in
                   stock.neck.fpn_convs[len(stock.neck.lateral_convs):]]
    assert extra == stock_extra  # P6/P7 convs: the same shapes


def test_metafiles_and_model_index(full_models):
    import yaml
    index = yaml.safe_load(open(osp.join(REPO, 'model-index.yml')))
    for config in CONFIGS:
        folder = f'configs/det/{osp.dirname(config)}'
        assert f'{folder}/metafile.yml' in index['Import']
        meta = yaml.safe_load(open(osp.join(REPO, folder, 'metafile.yml')))
        assert osp.isfile(osp.join(REPO, meta['Collections'][0]['README']))
        entry, = [m for m in meta['Models']
                  if m['Name'] == osp.basename(config)[:-3]]
        assert entry['Config'] == f'{folder}/{osp.basename(config)}'
        assert 'Weights' not in entry and 'Results' not in entry
        assert entry['Metadata']['Parameters'] == _count(
            full_models[config][0])
        readme = open(osp.join(REPO, folder, 'README.md')).read()
        fapn, stock = full_models[config]
        assert f'{_count(fapn):,} | {_count(stock):,} | ' \
            f'{CONFIGS[config][1]:,}' in readme


@pytest.mark.parametrize('config', sorted(CONFIGS))
def test_loss_and_predict(config, det_config, det_model, det_toy_batch):
    kind = 'instance' if config.startswith('cascade') else 'bbox'
    cfg = det_config(config)
    # CPU budget: ResNet-18 (the R-50 models are counted above); the neck
    # and heads are the config's
    cfg.model.backbone.depth = 18
    cfg.model.neck.in_channels = [64, 128, 256, 512]
    test_cfg = cfg.model.test_cfg.get('rcnn', cfg.model.test_cfg)
    test_cfg.score_thr = 0.0  # keep an untrained model's detections
    test_cfg.max_per_img = 10
    if kind == 'instance':
        for stage in cfg.model.train_cfg.rcnn:
            stage.sampler.num = 64
    torch.manual_seed(0)
    model = det_model(cfg.model)
    convs = {f'align_modules.{i}': m.dcn.conv_offset
             for i, m in enumerate(model.neck.align_modules)}
    for conv in convs.values():  # released init: zero offsets
        assert not conv.weight.any() and not conv.bias.any()

    model.train()
    data = model.data_preprocessor(det_toy_batch(kind), training=True)
    loss, log_vars = model.parse_losses(model(**data, mode='loss'))
    assert torch.isfinite(loss) and loss.item() > 0
    assert LOSSES[osp.dirname(config)] <= set(log_vars), sorted(log_vars)
    loss.backward()
    for name, conv in convs.items():
        grad = conv.weight.grad
        assert grad is not None and torch.isfinite(grad).all(), name
        assert grad.abs().sum() > 0, name

    model.eval()
    batch = det_toy_batch(kind, split='val')
    with torch.no_grad():
        results = model(**model.data_preprocessor(batch, training=False),
                        mode='predict')
    assert len(results) == 2
    for res, gt in zip(results, batch['data_samples']):
        h, w = gt.ori_shape
        pred = res.pred_instances
        assert len(pred) == 10  # score_thr 0: max_per_img kept
        boxes = pred.bboxes
        assert boxes.shape == (10, 4) and torch.isfinite(boxes).all()
        assert (boxes >= 0).all() and (boxes[:, 2] <= w).all() and (
            boxes[:, 3] <= h).all()
        assert (boxes[:, :2] <= boxes[:, 2:]).all()
        assert ((pred.scores >= 0) & (pred.scores <= 1)).all()
        assert ((pred.labels >= 0) & (pred.labels < 80)).all()
        if kind == 'instance':
            assert pred.masks.shape == (10, h, w)
            assert pred.masks.dtype == torch.bool


FCOS_CHILD = '''
_base_ = [{config!r}]
pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(97, 65), keep_ratio=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor'))
]
model = dict(
    backbone=dict(depth=18, init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512]),
    test_cfg=dict(score_thr=0.0))
train_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(data_root={root!r}, pipeline=pipeline))
val_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(data_root={root!r}, pipeline=pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file={root!r} + '/annotations/instances_val2017.json')
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=1, val_interval=10)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1))
'''


def _mim(args, cwd):
    bin_dir = osp.dirname(sys.executable)
    env = dict(os.environ)
    env['PATH'] = bin_dir + os.pathsep + env.get('PATH', '')
    env.setdefault('OMP_NUM_THREADS', '2')
    proc = subprocess.run(
        [osp.join(bin_dir, 'mim')] + args + ['--gpus', '0', '--launcher',
                                             'none'],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-6000:]
    return proc.stdout


@pytest.mark.slow
def test_fcos_mim_train_then_test(tmp_path, toy_coco):
    """2 iterations of ``mim train mmdet`` (4 toy images, batch 2), then
    ``mim test mmdet`` of the checkpoint with COCO bbox mAP."""
    child = tmp_path / 'toy_fcos.py'
    child.write_text(FCOS_CHILD.format(
        config=osp.join(CONFIG_ROOT,
                        'fcos/fcos_r50-caffe_fapn_gn-head_1x_coco.py'),
        root=toy_coco['root']))
    work = tmp_path / 'work'
    out = _mim(['train', 'mmdet', str(child), '--work-dir', str(work)],
               cwd=str(tmp_path))
    losses = [(int(i), float(v)) for i, v in re.findall(
        r'Epoch\(train\)\s+\[1\]\[(\d)/2\].*?\bloss: (-?[\d.]+|nan)', out)]
    assert [i for i, _ in losses] == [1, 2], out[-4000:]
    assert all(0 < v < 1e3 for _, v in losses), losses
    for key in ('loss_cls', 'loss_bbox', 'loss_centerness'):
        assert f'{key}: ' in out, key
    ckpt = work / 'epoch_1.pth'
    assert ckpt.is_file()
    state = torch.load(str(ckpt), map_location='cpu', weights_only=False)
    assert any(k.startswith('neck.align_modules.1.dcn.conv_offset')
               for k in state['state_dict'])

    out = _mim(['test', 'mmdet', str(child), '--checkpoint', str(ckpt),
                '--work-dir', str(tmp_path / 'test')], cwd=str(tmp_path))
    lines = [ln for ln in out.splitlines()
             if re.search(r'Epoch\(test\)', ln) and 'coco/' in ln]
    assert lines, out[-4000:]
    results = {k: float(v) for k, v in re.findall(
        r'coco/(\w+): (-?[\d.]+)', lines[-1])}
    print('FCOS FaPN (R-18, 2 iterations) on toy COCO val:', results)
    keys = [f'bbox_mAP{s}' for s in ('', '_50', '_75', '_s', '_m', '_l')]
    assert set(keys) <= set(results), sorted(results)
    # -1: pycocotools' "no ground truth in this area range"
    assert all(results[k] == -1.0 or 0.0 <= results[k] <= 1.0
               for k in keys), results

"""The mmdet configs with FaPN: each is its stock mmdet base with only the
neck changed, adds exactly FaPN's parameters over FPN, trains (finite
losses reaching the FAM offset convs) and predicts well-formed results on
small odd-sized images."""
import os.path as osp

import pytest
import torch

# Released counts: FaPN neck 7,786,888 - mmdet FPN 3,344,384 (four levels, R50/R101
# channels).  RetinaNet's pyramid starts at C3: FAMs on C4 and C3 only, and
# FaPN has no output conv on the top level (-590,080 for FPN's P5 conv).
CONFIG_ROOT = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(
        __file__))))), 'configs', 'det')
FOUR_LEVELS = 4_442_504
RETINANET = 3_158_192

CONFIGS = {
    'faster_rcnn/faster-rcnn_r50_fapn_1x_coco.py': ('bbox', FOUR_LEVELS),
    'faster_rcnn/faster-rcnn_r101_fapn_ms-3x_coco.py': ('bbox', FOUR_LEVELS),
    'retinanet/retinanet_r50_fapn_1x_coco.py': ('bbox', RETINANET),
    'mask_rcnn/mask-rcnn_r50_fapn_1x_coco.py': ('instance', FOUR_LEVELS),
    'mask_rcnn/mask-rcnn_r101_fapn_ms-poly-3x_coco.py':
    ('instance', FOUR_LEVELS),
    'point_rend/point-rend_r50-caffe_fapn_ms-1x_coco.py':
    ('instance', FOUR_LEVELS),
    'panoptic_fpn/panoptic-fpn_r50_fapn_1x_coco.py':
    ('panoptic', FOUR_LEVELS),
    'panoptic_fpn/panoptic-fpn_r101_fapn_ms-3x_coco.py':
    ('panoptic', FOUR_LEVELS),
}
EXPECTED_STOCK = {
    'faster_rcnn/faster-rcnn_r50_fapn_1x_coco.py':
    'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
    'faster_rcnn/faster-rcnn_r101_fapn_ms-3x_coco.py':
    'mmdet::faster_rcnn/faster-rcnn_r101_fpn_ms-3x_coco.py',
    'retinanet/retinanet_r50_fapn_1x_coco.py':
    'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
    'mask_rcnn/mask-rcnn_r50_fapn_1x_coco.py':
    'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
    'mask_rcnn/mask-rcnn_r101_fapn_ms-poly-3x_coco.py':
    'mmdet::mask_rcnn/mask-rcnn_r101_fpn_ms-poly-3x_coco.py',
    'point_rend/point-rend_r50-caffe_fapn_ms-1x_coco.py':
    'mmdet::point_rend/point-rend_r50-caffe_fpn_ms-1x_coco.py',
    'panoptic_fpn/panoptic-fpn_r50_fapn_1x_coco.py':
    'mmdet::panoptic_fpn/panoptic-fpn_r50_fpn_1x_coco.py',
    'panoptic_fpn/panoptic-fpn_r101_fapn_ms-3x_coco.py':
    'mmdet::panoptic_fpn/panoptic-fpn_r101_fpn_ms-3x_coco.py',
}
PLUGIN_KEYS = dict(
    custom_imports=dict(imports=['mmfapn', 'mmfapn.engine.harden'],
                        allow_failed_imports=False),
    runner_type='DataCheckedRunner')


@pytest.mark.parametrize('config', sorted(CONFIGS))
def test_only_the_neck_differs_from_stock(config, det_config,
                                          det_stock_base, det_stock_config):
    assert det_stock_base(config) == EXPECTED_STOCK[config]
    fapn = det_config(config).to_dict()
    stock = det_stock_config(det_stock_base(config)).to_dict()
    for key, value in PLUGIN_KEYS.items():
        assert fapn.pop(key) == value
        assert key not in stock
    assert stock['model']['neck']['type'] == 'FPN'
    assert fapn['model']['neck'].pop('type') == 'FaPN'
    stock['model']['neck'].pop('type')
    # same backbone, heads, data, schedule and runtime as the stock config
    assert fapn == stock


def _metafile_entry(config):
    import yaml
    folder = osp.dirname(config)
    meta = yaml.safe_load(open(osp.join(CONFIG_ROOT, folder,
                                        'metafile.yml')))
    name = osp.basename(config)[:-3]
    entries = [m for m in meta['Models'] if m['Name'] == name]
    assert len(entries) == 1, name
    return entries[0]


def test_model_index_lists_every_config():
    """mim's index imports each folder's metafile; each config has an entry
    pointing at it, without weights (none exist), with the paper's
    results (none for RetinaNet) and a README that exists."""
    import yaml
    repo = osp.dirname(osp.dirname(CONFIG_ROOT))
    index = yaml.safe_load(open(osp.join(repo, 'model-index.yml')))
    box_ap = {}
    for config in CONFIGS:
        folder = f'configs/det/{osp.dirname(config)}'
        assert f'{folder}/metafile.yml' in index['Import']
        entry = _metafile_entry(config)
        assert entry['Config'] == f'{folder}/{osp.basename(config)}'
        assert osp.isfile(osp.join(repo, entry['Config']))
        assert 'Weights' not in entry
        for res in entry.get('Results', []):
            if 'box AP' in res['Metrics']:
                box_ap[osp.basename(config)[:-3]] = res['Metrics']['box AP']
        meta = yaml.safe_load(open(osp.join(repo, folder, 'metafile.yml')))
        assert osp.isfile(osp.join(repo,
                                   meta['Collections'][0]['README']))
    assert box_ap == {  # paper Tables 3 and 5
        'faster-rcnn_r50_fapn_1x_coco': 39.2,
        'faster-rcnn_r101_fapn_ms-3x_coco': 42.8,
        'mask-rcnn_r50_fapn_1x_coco': 39.8,
        'mask-rcnn_r101_fapn_ms-poly-3x_coco': 43.8,
        'point-rend_r50-caffe_fapn_ms-1x_coco': 39.4,
    }


@pytest.mark.parametrize('config', sorted(CONFIGS))
def test_param_overhead_is_the_neck_difference(config, det_config,
                                               det_stock_base,
                                               det_stock_config, det_model,
                                               count_params):
    fapn = det_model(det_config(config).model, init=False)
    stock = det_model(
        det_stock_config(det_stock_base(config)).model, init=False)
    assert type(fapn.neck).__name__ == 'FaPN'
    assert type(stock.neck).__name__ == 'FPN'
    diff = count_params(fapn) - count_params(stock)
    print(f'{config}: FaPN {count_params(fapn):,} - FPN base '
          f'{count_params(stock):,} = {diff:,} parameters')
    assert diff == CONFIGS[config][1]
    assert count_params(fapn.neck) - count_params(stock.neck) == diff
    # the metafile (mim's model index) lists this count
    assert _metafile_entry(config)['Metadata']['Parameters'] == count_params(
        fapn)
    assert len(fapn.neck.align_modules) == (
        2 if config.startswith('retinanet') else 3)


def _fam_offset_convs(model):
    return {
        f'neck.align_modules.{i}.dcn.conv_offset': m.dcn.conv_offset
        for i, m in enumerate(model.neck.align_modules)
    }


def _check_predictions(kind, results, batch, num_classes):
    assert len(results) == len(batch['data_samples'])
    for res, gt in zip(results, batch['data_samples']):
        h, w = gt.ori_shape
        if kind == 'panoptic':
            from mmdet.evaluation import INSTANCE_OFFSET
            assert 'pred_instances' not in res  # panoptic output only
            pan = res.pred_panoptic_seg.sem_seg
            assert pan.shape == (1, h, w)
            labels = pan % INSTANCE_OFFSET
            # a class index per pixel; num_classes marks void
            assert labels.min() >= 0 and labels.max() <= num_classes
            continue
        pred = res.pred_instances
        n = len(pred)
        assert n == 10  # score_thr=0: max_per_img=10 detections kept
        assert pred.bboxes.shape == (n, 4) and pred.scores.shape == (n, )
        boxes = pred.bboxes  # clipped to the original image
        assert torch.isfinite(boxes).all() and (boxes >= 0).all()
        assert (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
        assert (boxes[:, :2] <= boxes[:, 2:]).all()
        assert ((pred.scores >= 0) & (pred.scores <= 1)).all()
        assert ((pred.labels >= 0) & (pred.labels < 80)).all()
        if kind == 'instance':
            assert pred.masks.shape == (n, h, w)
            assert pred.masks.dtype == torch.bool


@pytest.mark.parametrize('config', sorted(CONFIGS))
def test_loss_and_predict(config, det_config, det_model, det_toy_batch):
    kind = CONFIGS[config][0]
    cfg = det_config(config)
    # CPU budget: ResNet-18 instead of R-50/101 (the full models are built
    # and counted above) and fewer RoIs per image (64 sampled in training,
    # 10 kept at test: the mask heads run per RoI); the neck, the heads and
    # every other setting are the config's.
    cfg.model.backbone.depth = 18
    cfg.model.neck.in_channels = [64, 128, 256, 512]
    if 'rcnn' in cfg.model.train_cfg:
        cfg.model.train_cfg.rcnn.sampler.num = 64
    # score_thr 0: an untrained model's detections are kept, so the result
    # structure is exercised
    test_cfg = cfg.model.test_cfg.get('rcnn', cfg.model.test_cfg)
    test_cfg.score_thr = 0.0
    test_cfg.max_per_img = 10
    torch.manual_seed(0)
    model = det_model(cfg.model)
    offset_convs = _fam_offset_convs(model)
    for conv in offset_convs.values():  # released init: zero offsets
        assert not conv.weight.any() and not conv.bias.any()

    model.train()
    batch = det_toy_batch(kind)
    data = model.data_preprocessor(batch, training=True)
    assert tuple(data['inputs'].shape) == (2, 3, 96, 128)
    losses = model(**data, mode='loss')
    loss, log_vars = model.parse_losses(losses)
    assert torch.isfinite(loss) and loss.item() > 0
    for name, value in log_vars.items():
        assert torch.isfinite(torch.as_tensor(value)), (name, value)
    expected = {
        'bbox': {'loss_cls', 'loss_bbox'},
        'instance': {'loss_cls', 'loss_bbox', 'loss_mask'},
        'panoptic': {'loss_cls', 'loss_bbox', 'loss_mask', 'loss_seg'},
    }[kind]
    assert expected <= set(log_vars), sorted(log_vars)
    loss.backward()
    for name, conv in offset_convs.items():
        grad = conv.weight.grad
        assert grad is not None, name
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, name

    model.eval()
    with torch.no_grad():
        batch = det_toy_batch(kind, split='val')
        results = model(
            **model.data_preprocessor(batch, training=False), mode='predict')
    num_classes = 133 if kind == 'panoptic' else 80
    _check_predictions(kind, results, batch, num_classes)


def test_downstream_config_overrides_one_field(tmp_path, det_config,
                                               det_model, count_params):
    """A project outside this repo inherits an mmfapn config by path and
    changes one field (README, "Using the configs in your project")."""
    from mmengine import Config
    parent = 'mask_rcnn/mask-rcnn_r50_fapn_1x_coco.py'
    child = tmp_path / 'my_project' / 'configs' / 'my_mask_rcnn.py'
    child.parent.mkdir(parents=True)
    child.write_text(
        f'_base_ = {osp.join(CONFIG_ROOT, parent)!r}\n'
        'model = dict(neck=dict(deform_groups=4))\n')
    cfg = Config.fromfile(str(child))
    expected = det_config(parent).to_dict()
    expected['model']['neck']['deform_groups'] = 4
    assert cfg.to_dict() == expected  # plugin import and runner included
    model = det_model(cfg.model, init=False)
    assert type(model.neck).__name__ == 'FaPN'
    assert {m.dcn.deform_groups for m in model.neck.align_modules} == {4}
    # 4 groups: the three offset/mask convs predict half the channels
    assert count_params(model.neck) == 7_786_888 - 3 * 248_940

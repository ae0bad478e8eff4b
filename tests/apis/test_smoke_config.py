"""What a smoke run changes in a config before training (prepare_smoke_
config): toy data written and pointed at, sizes scaled by one factor,
small batches, a short schedule, no pretrained weights, every detection
kept; and the one-line refusals."""
import os.path as osp

import pytest
from mmengine.config import Config

from mmfapn.apis import dataset_kind, prepare_smoke_config
from mmfapn.apis import drop_pretrained

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = osp.join(REPO, 'configs')


def test_detection_config_ms_3x(tmp_path):
    cfg, info = prepare_smoke_config(
        osp.join(CONFIGS, 'det/faster_rcnn',
                 'faster-rcnn_r101_fapn_ms-3x_coco.py'),
        work_dir=str(tmp_path), iters=3,
        cfg_options={'model.rpn_head.feat_channels': 64})
    assert info['kind'] == 'coco' and info['by_epoch']
    assert info['dropped'] == ['torchvision://resnet101']
    assert cfg.model.backbone.init_cfg is None
    assert cfg.model.rpn_head.feat_channels == 64  # options applied last
    # one factor: the test resize's longest side 1333 -> 128
    assert info['factor'] == pytest.approx(128 / 1333)
    train = cfg.train_dataloader
    assert (train.batch_size, train.num_workers) == (2, 0)
    assert train.dataset.type == 'RepeatDataset' and train.dataset.times == 1
    inner = train.dataset.dataset
    assert [t.scale for t in inner.pipeline if t.type == 'RandomResize'] == \
        [[(128, 61), (128, 77)]]
    val = cfg.val_dataloader
    assert val.batch_size == 1
    assert [t.scale for t in val.dataset.pipeline if t.type == 'Resize'] == \
        [(128, 77)]
    root = str(tmp_path / 'data' / 'coco')
    assert inner.data_root == val.dataset.data_root == root
    assert osp.isfile(osp.join(root, inner.ann_file))
    assert cfg.val_evaluator.ann_file == osp.join(
        root, 'annotations/instances_val2017.json')
    assert osp.isfile(cfg.val_evaluator.ann_file)
    # 3 iterations of batch 2 make the epoch
    assert len(info['data']['train_images']) == 6
    assert cfg.train_cfg.max_epochs == 1 and cfg.train_cfg.val_interval == 1
    assert cfg.default_hooks.checkpoint.interval == 1
    assert cfg.default_hooks.checkpoint.save_optimizer is False
    assert cfg.model.test_cfg.rcnn.score_thr == 0.0
    assert cfg.load_from is None and cfg.resume is False


def test_segmentation_config_with_crop(tmp_path):
    cfg, info = prepare_smoke_config(
        osp.join(CONFIGS, 'seg/point_rend/'
                 'pointrend_r50_fapn_4xb2-80k_cityscapes-512x1024.py'),
        work_dir=str(tmp_path), image_size=64, iters=2)
    assert info['kind'] == 'cityscapes' and not info['by_epoch']
    # the training crop's longest side 1024 -> 64
    assert info['factor'] == pytest.approx(64 / 1024)
    assert cfg.model.data_preprocessor.size == (32, 64)
    crops = [t.crop_size for t in cfg.train_dataloader.dataset.pipeline
             if t.type == 'RandomCrop']
    assert crops == [(32, 64)]
    assert cfg.model.pretrained is None
    assert info['dropped'] == ['open-mmlab://resnet50_v1c']
    assert cfg.train_cfg.max_iters == 2 and cfg.train_cfg.val_interval == 2
    assert cfg.train_dataloader.dataset.data_prefix == dict(
        img_path='leftImg8bit/train', seg_map_path='gtFine/train')
    assert cfg.test_dataloader.dataset.data_prefix == dict(
        img_path='leftImg8bit/val', seg_map_path='gtFine/val')


def test_drop_pretrained_everywhere():
    model = dict(pretrained='a.pth',
                 backbone=dict(init_cfg=dict(type='Pretrained',
                                             checkpoint='b.pth')),
                 head=dict(init_cfg=[dict(type='Normal'),
                                     dict(type='Pretrained',
                                          checkpoint='c.pth')]))
    cfg = Config(dict(model=model))
    assert drop_pretrained(cfg.model) == ['a.pth', 'b.pth', 'c.pth']
    assert cfg.model.pretrained is None
    assert cfg.model.backbone.init_cfg is None
    assert cfg.model.head.init_cfg == [dict(type='Normal')]


def test_refusals(tmp_path):
    voc = Config(dict(train_dataloader=dict(dataset=dict(
        type='PascalVOCDataset'))))
    with pytest.raises(ValueError,
                       match=r"^train_dataloader\.dataset\.type="
                       r"'PascalVOCDataset': no toy dataset for it; smoke "
                       r'runs support CocoDataset, '):
        dataset_kind(voc)
    mixed = Config(dict(
        train_dataloader=dict(dataset=dict(type='ADE20KDataset')),
        val_dataloader=dict(dataset=dict(type='mmseg.CityscapesDataset'))))
    with pytest.raises(ValueError, match='read different datasets'):
        dataset_kind(mixed)
    wrapped = Config(dict(train_dataloader=dict(dataset=dict(
        type='ConcatDataset', datasets=[dict(type='CocoDataset'),
                                        dict(type='CocoDataset')]))))
    assert dataset_kind(wrapped) == 'coco'
    with pytest.raises(ValueError, match='^iters must be an int >= 1, got 0'):
        prepare_smoke_config('x.py', iters=0)
    with pytest.raises(FileNotFoundError, match='config file not found'):
        prepare_smoke_config(str(tmp_path / 'nope.py'))

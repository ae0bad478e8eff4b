"""Fixtures for the mmdet config tests: load a config and its stock mmdet
base, build models with nothing downloaded, and feed them small odd-sized
batches of the toy COCO data through mmdet's own datasets, transforms and
data preprocessor."""
import ast
import os.path as osp

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
DET_CONFIGS = osp.join(REPO, 'configs', 'det')
# toy images: both sides odd (mmdet pads them to a multiple of 32)
TOY_H, TOY_W = 65, 97


def config_path(rel: str) -> str:
    return osp.join(DET_CONFIGS, rel)


def load_config(rel: str):
    from mmengine import Config
    return Config.fromfile(config_path(rel))


def stock_base_of(rel: str) -> str:
    """The ``mmdet::`` entry of the config's ``_base_`` list."""
    tree = ast.parse(open(config_path(rel)).read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == '_base_':
            bases = ast.literal_eval(node.value)
            bases = [bases] if isinstance(bases, str) else bases
            stock = [b for b in bases if b.startswith('mmdet::')]
            assert len(stock) == 1, bases
            return stock[0]
    raise AssertionError(f'{rel} has no _base_')


def load_stock_config(mmdet_path: str, tmp_dir: str):
    """Load a stock config the way a child config sees it (``_base_`` with
    the ``mmdet::`` prefix, which ``Config.fromfile`` does not accept)."""
    from mmengine import Config
    child = osp.join(tmp_dir, 'stock_child.py')
    with open(child, 'w') as f:
        f.write(f'_base_ = {mmdet_path!r}\n')
    return Config.fromfile(child)


def build_model(model_cfg, init: bool = True):
    """Build a detector with no pretrained weights; ``init``: initialise it
    as the Runner does (``init_weights``)."""
    from mmfapn.apis.inference import build_model_cfg
    model_cfg = model_cfg.copy()
    model_cfg.backbone.init_cfg = None
    return build_model_cfg('mmdet', model_cfg, init_weights=init)


@pytest.fixture(scope='session')
def toy_coco(tmp_path_factory):
    """4 train + 2 val toy COCO images (65x97), instances and panoptic."""
    from mmfapn.datasets import write_toy_coco
    root = tmp_path_factory.mktemp('toy_coco')
    return write_toy_coco(str(root), num_train=4, num_val=2, height=TOY_H,
                          width=TOY_W, seed=0)


def toy_batch(info: dict, kind: str, split: str = 'train', count: int = 2):
    """``count`` samples of the toy data, as a dataloader collates them.

    ``kind``: 'bbox' (boxes), 'instance' (boxes + polygon masks as bitmaps)
    or 'panoptic' (boxes, masks, semantic map from the panoptic PNG).  No
    resize: the network sees the odd 65x97 images (padded to 96x128).
    """
    from mmdet.datasets import CocoDataset, CocoPanopticDataset
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    meta = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor',
            'flip', 'flip_direction')
    # the stock pipelines' Resize, at scale 1: sets scale_factor, which
    # predict() needs to map boxes back to the original image
    keep_size = dict(type='Resize', scale_factor=1.0, keep_ratio=True)
    if kind == 'panoptic':
        dataset = CocoPanopticDataset(
            data_root=info['root'],
            ann_file=f'annotations/panoptic_{split}2017.json',
            data_prefix=dict(
                img=f'{split}2017/', seg=f'annotations/panoptic_{split}2017/'),
            test_mode=True,
            pipeline=[
                dict(type='LoadImageFromFile'),
                keep_size,
                dict(type='LoadPanopticAnnotations'),
                dict(type='PackDetInputs', meta_keys=meta)
            ])
    else:
        dataset = CocoDataset(
            data_root=info['root'],
            ann_file=f'annotations/instances_{split}2017.json',
            data_prefix=dict(img=f'{split}2017/'),
            test_mode=True,
            pipeline=[
                dict(type='LoadImageFromFile'),
                keep_size,
                dict(type='LoadAnnotations', with_bbox=True,
                     with_mask=kind == 'instance'),
                dict(type='PackDetInputs', meta_keys=meta)
            ])
    return pseudo_collate([dataset[i] for i in range(count)])


@pytest.fixture
def det_config():
    return load_config


@pytest.fixture
def det_stock_base():
    return stock_base_of


@pytest.fixture
def det_stock_config(tmp_path):
    return lambda mmdet_path: load_stock_config(mmdet_path, str(tmp_path))


@pytest.fixture
def det_model():
    return build_model


@pytest.fixture
def det_toy_batch(toy_coco):
    return lambda kind, split='train', count=2: toy_batch(
        toy_coco, kind, split, count)

"""Toy data for a smoke run: which dataset a config reads, a generated
dataset in that on-disk format, and the config pointed at it.

Supported datasets (the ones the shipped configs use), by dataset type:
``CocoDataset`` and ``CocoPanopticDataset`` (one
:func:`~mmfapn.datasets.write_toy_coco` dataset has both),
``CityscapesDataset`` (:func:`~mmfapn.datasets.write_toy_cityscapes`),
``ADE20KDataset`` (:func:`~mmfapn.datasets.write_toy_ade`) and
``COCOStuffDataset``
(:func:`~mmfapn.datasets.toy_coco_stuff.write_toy_coco_stuff`).

Every dataloader's dataset gets ``data_root``, ``ann_file`` and
``data_prefix`` of the toy dataset (training split for the training
loader, validation split for the validation and test loaders), and the
COCO metrics get the toy annotation files.  Dataset wrappers
(``RepeatDataset``, ``ClassBalancedDataset``, ``MultiImageMixDataset``,
``ConcatDataset``) are followed to the datasets inside.
"""
import os.path as osp
from typing import Dict, Iterator, List, Optional

from mmengine.config import Config, ConfigDict

DATASET_KINDS = {
    'CocoDataset': 'coco',
    'CocoPanopticDataset': 'coco_panoptic',
    'CityscapesDataset': 'cityscapes',
    'ADE20KDataset': 'ade20k',
    'COCOStuffDataset': 'coco_stuff',
}
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')

# (data_prefix, ann_file) of each kind for the training ('train') and the
# evaluation ('val') split, relative to the toy data root.
_LAYOUT = {
    'coco': {
        'train': (dict(img='train2017/'),
                  'annotations/instances_train2017.json'),
        'val': (dict(img='val2017/'), 'annotations/instances_val2017.json'),
    },
    'coco_panoptic': {
        'train': (dict(img='train2017/',
                       seg='annotations/panoptic_train2017/'),
                  'annotations/panoptic_train2017.json'),
        'val': (dict(img='val2017/', seg='annotations/panoptic_val2017/'),
                'annotations/panoptic_val2017.json'),
    },
    'cityscapes': {
        'train': (dict(img_path='leftImg8bit/train',
                       seg_map_path='gtFine/train'), ''),
        'val': (dict(img_path='leftImg8bit/val',
                     seg_map_path='gtFine/val'), ''),
    },
    'ade20k': {
        'train': (dict(img_path='images/training',
                       seg_map_path='annotations/training'), ''),
        'val': (dict(img_path='images/validation',
                     seg_map_path='annotations/validation'), ''),
    },
    'coco_stuff': {
        'train': (dict(img_path='images/train2014',
                       seg_map_path='annotations/train2014'), ''),
        'val': (dict(img_path='images/test2014',
                     seg_map_path='annotations/test2014'), ''),
    },
}


def _type_name(cfg) -> str:
    name = cfg.get('type', '')
    if not isinstance(name, str):  # a class given directly
        name = getattr(name, '__name__', str(name))
    return name.split('.')[-1]  # 'mmdet.CocoDataset' -> 'CocoDataset'


def leaf_datasets(dataset_cfg) -> Iterator[ConfigDict]:
    """The dataset configs inside ``dataset_cfg``, through wrappers."""
    if not isinstance(dataset_cfg, (dict, ConfigDict)):
        return
    if isinstance(dataset_cfg.get('datasets'), (list, tuple)):
        for sub in dataset_cfg['datasets']:
            yield from leaf_datasets(sub)
    elif isinstance(dataset_cfg.get('dataset'), (dict, ConfigDict)):
        yield from leaf_datasets(dataset_cfg['dataset'])
    else:
        yield dataset_cfg


def dataset_kind(cfg: Config) -> str:
    """The toy dataset kind (a key of ``_LAYOUT``) that ``cfg`` reads.

    Raises:
        ValueError: no dataloader, a dataset type without a toy writer, or
            dataloaders of different kinds.
    """
    kinds = {}
    for loader in LOADERS:
        loader_cfg = cfg.get(loader)
        if not isinstance(loader_cfg, (dict, ConfigDict)):
            continue
        for ds in leaf_datasets(loader_cfg.get('dataset')):
            name = _type_name(ds)
            if name not in DATASET_KINDS:
                raise ValueError(
                    f'{loader}.dataset.type={name!r}: no toy dataset for '
                    f'it; smoke runs support {", ".join(DATASET_KINDS)}')
            kinds[DATASET_KINDS[name]] = f'{loader}.dataset.type={name!r}'
    if not kinds:
        raise ValueError('the config has no train/val/test dataloader')
    if len(kinds) > 1:
        raise ValueError('the dataloaders read different datasets ('
                         f'{", ".join(kinds.values())}); a smoke run '
                         'generates one')
    return next(iter(kinds))


def write_toy_dataset(kind: str, root: str, num_train: int, num_val: int,
                      seed: int = 0) -> Dict:
    """Write the toy dataset of ``kind`` under ``root`` (small images: the
    writers' defaults) and return the writer's description."""
    from mmfapn.datasets import (write_toy_ade, write_toy_cityscapes,
                                 write_toy_coco)
    from mmfapn.datasets.toy_coco_stuff import write_toy_coco_stuff
    writers = dict(
        coco=write_toy_coco,
        coco_panoptic=write_toy_coco,
        cityscapes=write_toy_cityscapes,
        ade20k=write_toy_ade,
        coco_stuff=write_toy_coco_stuff)
    if kind not in writers:
        raise ValueError(f'unknown toy dataset kind {kind!r}; choose from '
                         f'{", ".join(writers)}')
    return writers[kind](
        root, num_train=num_train, num_val=num_val, seed=seed)


def _point_dataset(ds: ConfigDict, kind: str, root: str, split: str) -> None:
    prefix, ann_file = _LAYOUT[kind][split]
    ds.data_root = root
    ds.ann_file = ann_file
    ds.data_prefix = ConfigDict(prefix)


def _metrics(evaluator) -> List[ConfigDict]:
    if isinstance(evaluator, (list, tuple)):
        return [m for m in evaluator if isinstance(m, (dict, ConfigDict))]
    if isinstance(evaluator, (dict, ConfigDict)):
        if isinstance(evaluator.get('metrics'), (list, tuple)):
            return _metrics(evaluator['metrics'])
        return [evaluator]
    return []


def point_config_at(cfg: Config, kind: str, root: str) -> None:
    """Point every dataloader and the COCO metrics of ``cfg`` at the toy
    dataset of ``kind`` in ``root`` (in place)."""
    root = osp.abspath(root)
    for loader in LOADERS:
        loader_cfg = cfg.get(loader)
        if not isinstance(loader_cfg, (dict, ConfigDict)):
            continue
        split = 'train' if loader == 'train_dataloader' else 'val'
        for ds in leaf_datasets(loader_cfg.get('dataset')):
            _point_dataset(ds, kind, root, split)
    _, val_ann = _LAYOUT[kind]['val']
    for key in ('val_evaluator', 'test_evaluator'):
        for metric in _metrics(cfg.get(key)):
            name = _type_name(metric)
            if name in ('CocoMetric', 'CocoPanopticMetric'):
                metric.ann_file = osp.join(root, val_ann)
                # a test-dev config only writes result files
                metric.format_only = False
                metric.pop('outfile_prefix', None)
            if name == 'CocoPanopticMetric':
                metric.seg_prefix = osp.join(root, _LAYOUT[kind]['val'][0]
                                             ['seg'])


def toy_data_summary(kind: str, info: Optional[Dict]) -> str:
    """'toy COCO panoptic data (4 train / 2 val images, 64x96) in ROOT'."""
    names = dict(coco='COCO instances', coco_panoptic='COCO panoptic',
                 cityscapes='Cityscapes', ade20k='ADE20K',
                 coco_stuff='COCO-Stuff-10K')
    if not info:
        return f'toy {names[kind]} data'
    return (f'toy {names[kind]} data ({info["height"]}x{info["width"]} '
            f'images) in {info["root"]}')

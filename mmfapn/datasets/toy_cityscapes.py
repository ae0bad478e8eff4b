"""A small dataset in the Cityscapes on-disk format, for tests and demos.

Layout (what mmseg's ``CityscapesDataset`` reads, ``data_prefix=dict(
img_path='leftImg8bit/train', seg_map_path='gtFine/train')``)::

    ROOT/leftImg8bit/{split}/toycity/toycity_{i:06d}_000019_leftImg8bit.png
    ROOT/gtFine/{split}/toycity/toycity_{i:06d}_000019_gtFine_labelTrainIds.png

with ``split`` in ``train``, ``val``.

Label maps hold Cityscapes train ids (0..18) and 255 (ignore), as written by
``cityscapesscripts``' ``createTrainIdLabelImgs``.  Each scene comes from
:func:`mmfapn.datasets.render_scene` (discs, polygons, thin bars and small
dots: outlines that matter), composed as a street-like picture:

- the background is "road" (train id 0): a real class, as in Cityscapes
  where nearly every pixel is labelled;
- objects take train ids 1..num_classes-1, one fixed colour per class;
- the bottom rows are a dark "ego vehicle" strip labelled 255 (ignore), as
  Cityscapes' ego-vehicle / out-of-ROI pixels are.

Training and validation images use disjoint seeds.
"""
import os
import os.path as osp
from typing import Dict, List, Tuple

import cv2
import numpy as np

from .synthetic import check_int, render_scene

CITY = 'toycity'
IMG_SUFFIX = '_leftImg8bit.png'
SEG_SUFFIX = '_gtFine_labelTrainIds.png'
CITYSCAPES_NUM_CLASSES = 19
IGNORE_INDEX = 255
ROAD = 0
# fraction of rows at the bottom written as the ignored ego-vehicle strip
EGO_FRACTION = 0.0625


def _check_int(name: str, value, low: int, high: int = None) -> None:
    check_int('write_toy_cityscapes', name, value, low, high)


def toy_cityscapes_scene(height: int, width: int, num_classes: int,
                         seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """One scene: RGB image (H, W, 3) uint8 and train-id map (H, W) uint8."""
    scene = render_scene(
        height, width, num_classes=num_classes - 1, seed=seed,
        background=IGNORE_INDEX)
    image = scene.image.copy()
    labels = scene.semantic.astype(np.int64)
    objects = labels != IGNORE_INDEX
    # objects: render_scene's 0-based classes -> train ids 1..num_classes-1
    labels = np.where(objects, labels + 1, ROAD)
    ego = max(1, int(round(height * EGO_FRACTION)))
    labels[height - ego:] = IGNORE_INDEX
    image[height - ego:] = (image[height - ego:] // 4)  # dark bonnet
    return image, labels.astype(np.uint8)


def _stem(index: int) -> str:
    return f'{CITY}_{index:06d}_000019'


def write_toy_cityscapes(root: str,
                         num_train: int = 4,
                         num_val: int = 2,
                         height: int = 64,
                         width: int = 128,
                         seed: int = 0,
                         num_classes: int = 19) -> Dict:
    """Write a toy Cityscapes-format dataset under ``root``.

    Args:
        root (str): output folder (created; existing files are overwritten).
        num_train (int): number of training images (>= 0).
        num_val (int): number of validation images (>= 0).
        height (int): image height in pixels (>= 8, odd allowed).
        width (int): image width in pixels (>= 8, odd allowed).
        seed (int): base seed; image ``i`` of split ``s`` uses a seed derived
            from ``(seed, s, i)`` so the splits never share a scene.
        num_classes (int): train ids used, 2..19: road (0) plus
            ``num_classes - 1`` object classes.  The label files always use
            Cityscapes' 19-class id space, so mmseg's ``CityscapesDataset``
            reads them unchanged.

    Returns:
        dict: ``root``, ``img_dir`` ('leftImg8bit'), ``ann_dir`` ('gtFine'),
        ``height``, ``width``, ``num_classes``, and per split (``'train'``,
        ``'val'``) a list of ``(image_path, label_path)`` tuples.
    """
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f'write_toy_cityscapes: root must be a path, got '
                        f'{root!r}')
    _check_int('num_train', num_train, 0)
    _check_int('num_val', num_val, 0)
    _check_int('height', height, 8)
    _check_int('width', width, 8)
    _check_int('seed', seed, 0)
    _check_int('num_classes', num_classes, 2, CITYSCAPES_NUM_CLASSES)
    root = os.fspath(root)
    result = dict(
        root=root,
        img_dir='leftImg8bit',
        ann_dir='gtFine',
        height=height,
        width=width,
        num_classes=num_classes)
    for split_id, (split, count) in enumerate((('train', num_train),
                                                ('val', num_val))):
        img_dir = osp.join(root, 'leftImg8bit', split, CITY)
        ann_dir = osp.join(root, 'gtFine', split, CITY)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        pairs: List[Tuple[str, str]] = []
        for i in range(count):
            scene_seed = int(np.random.SeedSequence(
                [seed, split_id, i]).generate_state(1)[0])
            image, labels = toy_cityscapes_scene(height, width, num_classes,
                                                 scene_seed)
            img_path = osp.join(img_dir, _stem(i) + IMG_SUFFIX)
            ann_path = osp.join(ann_dir, _stem(i) + SEG_SUFFIX)
            # cv2 writes BGR; the label map is a single-channel 8-bit PNG
            if not cv2.imwrite(img_path, image[..., ::-1].copy()):
                raise OSError(f'write_toy_cityscapes: cannot write {img_path}')
            if not cv2.imwrite(ann_path, labels):
                raise OSError(f'write_toy_cityscapes: cannot write {ann_path}')
            pairs.append((img_path, ann_path))
        result[split] = pairs
    return result

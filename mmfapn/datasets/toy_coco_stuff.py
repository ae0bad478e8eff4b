"""A small dataset in the COCO-Stuff-10K on-disk format (as mmseg's
``tools/dataset_converters/coco_stuff10k.py`` writes it), for tests and
smoke runs.

Layout (what mmseg's ``COCOStuffDataset`` reads with
``configs/_base_/datasets/coco-stuff10k.py``: ``data_prefix=dict(
img_path='images/train2014', seg_map_path='annotations/train2014')``,
``reduce_zero_label=True``)::

    root/
      images/{train2014,test2014}/COCO_{train,test}2014_{i:012d}.jpg
      annotations/{train2014,test2014}/COCO_..._{i:012d}_labelTrainIds.png

Label maps hold COCO-Stuff-10K's ids: 0 is unlabelled (``reduce_zero_label``
maps it to 255 and every other id ``k`` to class ``k - 1``) and 1..171 the
classes in mmseg's order (80 things, then 91 stuff classes).  Each scene
comes from :func:`mmfapn.datasets.render_scene`: objects are the first
``num_classes - 1`` thing classes, the background is the first stuff class
(id 81), and the top rows are an unlabelled band.  Training and test
images use disjoint seeds.
"""
import os
import os.path as osp
from typing import Dict, Tuple

import numpy as np

from .synthetic import (check_int, render_scene,
                         write_image_label_split)

COCO_STUFF_NUM_CLASSES = 171
NUM_THINGS = 80
UNLABELLED = 0
BACKGROUND = NUM_THINGS + 1  # the first stuff class, 1-based
SPLITS = (('train2014', 'train'), ('test2014', 'test'))
SEG_SUFFIX = '_labelTrainIds.png'
# fraction of rows at the top written as the unlabelled band
UNLABELLED_FRACTION = 0.0625


def toy_coco_stuff_scene(height: int, width: int, num_classes: int,
                         seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """One scene: RGB image (H, W, 3) uint8 and id map (H, W) uint8
    (0 = unlabelled, objects 1..num_classes-1, background 81)."""
    scene = render_scene(
        height, width, num_classes=num_classes - 1, seed=seed,
        background=255)
    image = scene.image.copy()
    labels = scene.semantic.astype(np.int64)
    labels = np.where(labels != 255, labels + 1, BACKGROUND)
    band = max(1, int(round(height * UNLABELLED_FRACTION)))
    labels[:band] = UNLABELLED
    image[:band] = 255 - image[:band] // 4
    return image, labels.astype(np.uint8)


def write_toy_coco_stuff(root: str,
                         num_train: int = 4,
                         num_val: int = 2,
                         height: int = 64,
                         width: int = 96,
                         seed: int = 0,
                         num_classes: int = 8) -> Dict:
    """Write a toy COCO-Stuff-10K dataset under ``root``.

    Args:
        root (str): output folder (created; existing files are overwritten).
        num_train (int): number of training images (>= 0).
        num_val (int): number of test images (``test2014``, the split the
            stock configs validate on; >= 0).
        height (int): image height in pixels (>= 8, odd allowed).
        width (int): image width in pixels (>= 8, odd allowed).
        seed (int): base seed; image ``i`` of split ``s`` uses a seed derived
            from ``(seed, s, i)`` so the splits never share a scene.
        num_classes (int): object classes drawn plus one, 2..81: ids
            1..num_classes-1 (things).  The files always use the
            171-class id space, so mmseg's ``COCOStuffDataset`` reads them
            unchanged.

    Returns:
        dict: ``root``, ``img_dir`` ('images'), ``ann_dir``
        ('annotations'), ``height``, ``width``, ``num_classes``, and per
        split (``'train2014'``, ``'test2014'``) a list of
        ``(image_path, label_path)`` tuples.
    """
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(
            f'write_toy_coco_stuff: root must be a path, got {root!r}')
    for name, value, low, high in (('num_train', num_train, 0, None),
                                   ('num_val', num_val, 0, None),
                                   ('height', height, 8, None),
                                   ('width', width, 8, None),
                                   ('seed', seed, 0, None),
                                   ('num_classes', num_classes, 2,
                                    NUM_THINGS + 1)):
        check_int('write_toy_coco_stuff', name, value, low, high)
    root = os.fspath(root)
    result = dict(
        root=root,
        img_dir='images',
        ann_dir='annotations',
        height=height,
        width=width,
        num_classes=num_classes)
    for split_id, ((split, word), count) in enumerate(
            zip(SPLITS, (num_train, num_val))):
        pairs = write_image_label_split(
            'write_toy_coco_stuff', osp.join(root, 'images', split),
            osp.join(root, 'annotations', split), count, seed, split_id,
            lambda s: toy_coco_stuff_scene(height, width, num_classes, s),
            lambda i, word=word: f'COCO_{word}2014_{i + 1:012d}', SEG_SUFFIX)
        result[split] = pairs
    return result

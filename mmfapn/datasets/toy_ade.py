"""A small dataset in the ADE20K (ADEChallengeData2016) on-disk format, for
tests and demos.

Layout (what mmseg's ``ADE20KDataset`` reads, ``data_prefix=dict(
img_path='images/training', seg_map_path='annotations/training')``)::

    root/
      images/{training,validation}/ADE_{train,val}_{i:08d}.jpg
      annotations/{training,validation}/ADE_{train,val}_{i:08d}.png

Label maps hold ADE20K's raw ids: 0 is "other" (unlabelled; mmseg's
``reduce_zero_label`` maps it to 255 and every other id ``k`` to ``k - 1``)
and 1..150 the classes.  Each scene comes from
:func:`mmfapn.datasets.render_scene` (discs, polygons, thin bars and small
dots), composed like an indoor picture:

- the background is "wall" (id 1), a real class, as in ADE20K where nearly
  every pixel is labelled;
- objects take ids 2..num_classes, one fixed colour per class;
- the top rows are a bright band labelled 0 ("other"), so that
  ``reduce_zero_label`` has something to ignore.

Training and validation images use disjoint seeds.
"""
import os
import os.path as osp
from typing import Dict, Tuple

import numpy as np

from .synthetic import (check_int, render_scene,
                         write_image_label_split)

ADE_NUM_CLASSES = 150
OTHER = 0
WALL = 1
SPLITS = (('training', 'train'), ('validation', 'val'))
# fraction of rows at the top written as the unlabelled "other" band
OTHER_FRACTION = 0.0625


def _check_int(name: str, value, low: int, high: int = None) -> None:
    check_int('write_toy_ade', name, value, low, high)


def toy_ade_scene(height: int, width: int, num_classes: int,
                  seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """One scene: RGB image (H, W, 3) uint8 and raw ADE id map (H, W) uint8
    (0 = other, 1 = wall, objects 2..num_classes)."""
    scene = render_scene(
        height, width, num_classes=num_classes - 1, seed=seed,
        background=255)
    image = scene.image.copy()
    labels = scene.semantic.astype(np.int64)
    objects = labels != 255
    # render_scene's 0-based object classes -> ADE ids 2..num_classes
    labels = np.where(objects, labels + 2, WALL)
    band = max(1, int(round(height * OTHER_FRACTION)))
    labels[:band] = OTHER
    image[:band] = 255 - image[:band] // 4  # a bright, unlabelled band
    return image, labels.astype(np.uint8)


def write_toy_ade(root: str,
                  num_train: int = 4,
                  num_val: int = 2,
                  height: int = 67,
                  width: int = 91,
                  seed: int = 0,
                  num_classes: int = ADE_NUM_CLASSES) -> Dict:
    """Write a toy ADE20K-format dataset under ``root``.

    Args:
        root (str): output folder (created; existing files are overwritten).
        num_train (int): number of training images (>= 0).
        num_val (int): number of validation images (>= 0).
        height (int): image height in pixels (>= 8, odd allowed).
        width (int): image width in pixels (>= 8, odd allowed).
        seed (int): base seed; image ``i`` of split ``s`` uses a seed derived
            from ``(seed, s, i)`` so the splits never share a scene.
        num_classes (int): ADE ids used, 2..150: wall (1) plus
            ``num_classes - 1`` object classes.  The files always use
            ADE20K's 150-class id space, so mmseg's ``ADE20KDataset`` reads
            them unchanged.

    Returns:
        dict: ``root``, ``img_dir`` ('images'), ``ann_dir``
        ('annotations'), ``height``, ``width``, ``num_classes``, and per
        split (``'training'``, ``'validation'``) a list of
        ``(image_path, label_path)`` tuples.
    """
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f'write_toy_ade: root must be a path, got {root!r}')
    _check_int('num_train', num_train, 0)
    _check_int('num_val', num_val, 0)
    _check_int('height', height, 8)
    _check_int('width', width, 8)
    _check_int('seed', seed, 0)
    _check_int('num_classes', num_classes, 2, ADE_NUM_CLASSES)
    root = os.fspath(root)
    result = dict(
        root=root,
        img_dir='images',
        ann_dir='annotations',
        height=height,
        width=width,
        num_classes=num_classes)
    counts = (num_train, num_val)
    for split_id, ((split, prefix), count) in enumerate(zip(SPLITS, counts)):
        # JPEG as ADE20K ships (lossy: the label map is the ground truth)
        pairs = write_image_label_split(
            'write_toy_ade', osp.join(root, 'images', split),
            osp.join(root, 'annotations', split), count, seed, split_id,
            lambda s: toy_ade_scene(height, width, num_classes, s),
            lambda i, prefix=prefix: f'ADE_{prefix}_{i + 1:08d}', '.png')
        result[split] = pairs
    return result

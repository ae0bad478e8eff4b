"""A small dataset in the COCO on-disk formats, for tests and demos.

Layout (what mmdet's stock ``CocoDataset`` and ``CocoPanopticDataset``
configs read with ``data_root=root``)::

    root/
      train2017/000000000001.jpg ...
      val2017/000000100001.jpg ...
      annotations/instances_{train,val}2017.json   # polygons
      annotations/panoptic_{train,val}2017.json
      annotations/panoptic_{train,val}2017/000000000001.png ...

Each scene comes from :func:`mmfapn.datasets.render_scene` (discs,
polygons, thin bars and 2-6 px dots: outlines that upsampling blurs).
Objects are "things" of the first ``num_classes`` COCO categories
(person, bicycle, car, ...); the background is split by a horizon into two
"stuff" regions, ``sky-other-merged`` above and ``road`` below, re-coloured
so that they can be told apart.  Category ids and names are COCO's own
(80 thing ids 1..90, 53 panoptic stuff ids 92..200), so the stock 80/133
class configs read the files unchanged.

Instance segmentations are polygons traced along pixel edges: rasterised by
pycocotools they give back each object's visible mask exactly, except that
a hole (an object seen through another one) is filled, as in COCO's own
polygon annotations.  The panoptic PNGs hold the exact, non-overlapping
visible masks, encoded as ``id = R + 256 * G + 256**2 * B`` (0 = void).
Training and validation scenes use disjoint seeds.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Tuple

import cv2
import numpy as np

from .synthetic import check_int, render_scene

# COCO category ids in mmdet's class order (CocoDataset.METAINFO and
# CocoPanopticDataset.METAINFO); checked against mmdet by the tests.
COCO_THING_IDS = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21,
    22, 23, 24, 25, 27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42,
    43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61,
    62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84,
    85, 86, 87, 88, 89, 90)
COCO_THING_NAMES = (
    'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train',
    'truck', 'boat', 'traffic light', 'fire hydrant', 'stop sign',
    'parking meter', 'bench', 'bird', 'cat', 'dog', 'horse', 'sheep', 'cow',
    'elephant', 'bear', 'zebra', 'giraffe', 'backpack', 'umbrella',
    'handbag', 'tie', 'suitcase', 'frisbee', 'skis', 'snowboard',
    'sports ball', 'kite', 'baseball bat', 'baseball glove', 'skateboard',
    'surfboard', 'tennis racket', 'bottle', 'wine glass', 'cup', 'fork',
    'knife', 'spoon', 'bowl', 'banana', 'apple', 'sandwich', 'orange',
    'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake', 'chair',
    'couch', 'potted plant', 'bed', 'dining table', 'toilet', 'tv', 'laptop',
    'mouse', 'remote', 'keyboard', 'cell phone', 'microwave', 'oven',
    'toaster', 'sink', 'refrigerator', 'book', 'clock', 'vase', 'scissors',
    'teddy bear', 'hair drier', 'toothbrush')
# COCO's supercategory of each thing, as runs over the list above.
_THING_SUPER = (('person', 1), ('vehicle', 8), ('outdoor', 5),
                ('animal', 10), ('accessory', 5), ('sports', 10),
                ('kitchen', 7), ('food', 10), ('furniture', 6),
                ('electronic', 6), ('appliance', 5), ('indoor', 7))
COCO_STUFF_IDS = (
    92, 93, 95, 100, 107, 109, 112, 118, 119, 122, 125, 128, 130, 133, 138,
    141, 144, 145, 147, 148, 149, 151, 154, 155, 156, 159, 161, 166, 168,
    171, 175, 176, 177, 178, 180, 181, 184, 185, 186, 187, 188, 189, 190,
    191, 192, 193, 194, 195, 196, 197, 198, 199, 200)
COCO_STUFF_NAMES = (
    'banner', 'blanket', 'bridge', 'cardboard', 'counter', 'curtain',
    'door-stuff', 'floor-wood', 'flower', 'fruit', 'gravel', 'house',
    'light', 'mirror-stuff', 'net', 'pillow', 'platform', 'playingfield',
    'railroad', 'river', 'road', 'roof', 'sand', 'sea', 'shelf', 'snow',
    'stairs', 'tent', 'towel', 'wall-brick', 'wall-stone', 'wall-tile',
    'wall-wood', 'water-other', 'window-blind', 'window-other',
    'tree-merged', 'fence-merged', 'ceiling-merged', 'sky-other-merged',
    'cabinet-merged', 'table-merged', 'floor-other-merged',
    'pavement-merged', 'mountain-merged', 'grass-merged', 'dirt-merged',
    'paper-merged', 'food-other-merged', 'building-other-merged',
    'rock-merged', 'wall-other-merged', 'rug-merged')
# the two stuff regions of every scene: (category id, RGB colour)
SKY = (187, (150, 180, 225))
ROAD = (149, (95, 95, 100))
# first image id of each split (ids are unique across splits, as in COCO)
_SPLIT_ID_BASE = dict(train=1, val=100001)


def _check_int(name: str, value, low: int, high: int = None) -> None:
    check_int('write_toy_coco', name, value, low, high)


def coco_categories(panoptic: bool = False) -> List[dict]:
    """COCO's category list: the 80 things (instances JSON), plus the 53
    stuff categories with ``isthing`` flags when ``panoptic``."""
    supers = [s for s, n in _THING_SUPER for _ in range(n)]
    cats = [
        dict(id=i, name=n, supercategory=s)
        for i, n, s in zip(COCO_THING_IDS, COCO_THING_NAMES, supers)
    ]
    if not panoptic:
        return cats
    for c in cats:
        c['isthing'] = 1
    return cats + [
        dict(id=i, name=n, isthing=0)
        for i, n in zip(COCO_STUFF_IDS, COCO_STUFF_NAMES)
    ]


def mask_to_polygons(mask: np.ndarray) -> List[List[float]]:
    """Outer outlines of a binary mask as COCO polygons.

    Vertices lie on pixel corners (pixel ``(y, x)`` is the unit square from
    ``(x, y)`` to ``(x + 1, y + 1)``), so pycocotools rasterises the
    polygons back to the mask exactly, holes filled.  The outline is traced
    by OpenCV on the mask upsampled x2, whose boundary pixel centres ``u``
    map to the corners ``ceil(u / 2)``.

    Args:
        mask (np.ndarray): (H, W) bool or 0/1 array.

    Returns:
        list[list[float]]: one ``[x0, y0, x1, y1, ...]`` per connected
        component (8-connectivity); empty for an empty mask.
    """
    up = np.kron(mask.astype(np.uint8), np.ones((2, 2), np.uint8))
    up = np.pad(up, 1)  # contours touching the image border stay closed
    contours, _ = cv2.findContours(up, cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    polygons = []
    for contour in contours:
        u = contour[:, 0, :] - 1  # undo the pad
        pts = (u + 1) // 2  # ceil(u / 2)
        keep = np.ones(len(pts), bool)
        keep[1:] = (pts[1:] != pts[:-1]).any(1)
        pts = pts[keep]
        if len(pts) > 1 and (pts[0] == pts[-1]).all():
            pts = pts[:-1]
        if len(pts) >= 3:
            polygons.append(pts.reshape(-1).astype(float).tolist())
    return polygons


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """The mask with every hole filled (what its outer polygons cover)."""
    canvas = np.pad(mask.astype(np.uint8), 1)
    h, w = canvas.shape
    cv2.floodFill(canvas, np.zeros((h + 2, w + 2), np.uint8), (0, 0), 2)
    return (canvas != 2)[1:-1, 1:-1]


def _bbox(mask: np.ndarray) -> List[float]:
    """COCO box ``[x, y, w, h]`` in pixel-edge coordinates."""
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()),
            float(xs.max() + 1 - xs.min()), float(ys.max() + 1 - ys.min())]


def toy_coco_scene(height: int, width: int, num_classes: int,
                   seed: int) -> Tuple[np.ndarray, list, list]:
    """One scene.

    Returns:
        tuple: RGB image (H, W, 3) uint8; things as ``(category_id, mask)``
        (visible masks, non-overlapping); stuff as ``(category_id, mask)``.
    """
    scene = render_scene(
        height, width, num_classes=num_classes, seed=seed, background=255)
    rng = np.random.default_rng([seed, 1])
    image = scene.image.astype(np.float64)
    background = scene.semantic == 255
    horizon = int(round(height * rng.uniform(0.35, 0.65)))
    rows = np.arange(height)[:, None]
    stuff = []
    for (cat_id, color), region in ((SKY, rows < horizon),
                                    (ROAD, rows >= horizon)):
        mask = background & region
        if mask.any():
            image[mask] = np.asarray(color) + rng.normal(
                0, 8.0, (int(mask.sum()), 3))
            stuff.append((cat_id, mask))
    things = [(COCO_THING_IDS[inst.label], inst.mask)
              for inst in scene.instances]
    return np.clip(image, 0, 255).astype(np.uint8), things, stuff


def _write_json(path: str, content: dict) -> None:
    with open(path, 'w') as f:
        json.dump(content, f)


def write_toy_coco(root: str,
                   num_train: int = 4,
                   num_val: int = 2,
                   height: int = 64,
                   width: int = 96,
                   seed: int = 0,
                   num_classes: int = 4) -> Dict:
    """Write a toy COCO dataset (instances + panoptic) under ``root``.

    Args:
        root (str): output folder (created; existing files are overwritten).
        num_train (int): training images (>= 0).
        num_val (int): validation images (>= 0).
        height (int): image height (>= 8, odd allowed).  mmdet's stock
            training configs drop images smaller than 32 px
            (``filter_cfg.min_size``).
        width (int): image width (>= 8, odd allowed).
        seed (int): base seed; image ``i`` of split ``s`` uses a seed derived
            from ``(seed, s, i)``.
        num_classes (int): thing classes used, 1..80: the first
            ``num_classes`` COCO categories (person, bicycle, car, ...).
            The JSON files always list all COCO categories.

    Returns:
        dict: ``root``; per split ``s`` in (``'train'``, ``'val'``):
        ``{s}_img_dir``, ``instances_{s}``, ``panoptic_{s}``,
        ``panoptic_{s}_dir`` (absolute paths) and ``{s}_images`` (list of
        image paths); plus ``height``, ``width``, ``num_classes``.
    """
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f'write_toy_coco: root must be a path, got {root!r}')
    _check_int('num_train', num_train, 0)
    _check_int('num_val', num_val, 0)
    _check_int('height', height, 8)
    _check_int('width', width, 8)
    _check_int('seed', seed, 0)
    _check_int('num_classes', num_classes, 1, len(COCO_THING_IDS))
    root = osp.abspath(os.fspath(root))
    ann_dir = osp.join(root, 'annotations')
    os.makedirs(ann_dir, exist_ok=True)
    result = dict(
        root=root, height=height, width=width, num_classes=num_classes)
    for split_id, (split, count) in enumerate((('train', num_train),
                                                ('val', num_val))):
        img_dir = osp.join(root, f'{split}2017')
        pan_dir = osp.join(ann_dir, f'panoptic_{split}2017')
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(pan_dir, exist_ok=True)
        images, instances, panoptic, img_paths = [], [], [], []
        for i in range(count):
            scene_seed = int(np.random.SeedSequence(
                [seed, split_id, i]).generate_state(1)[0])
            image, things, stuff = toy_coco_scene(height, width, num_classes,
                                                  scene_seed)
            img_id = _SPLIT_ID_BASE[split] + i
            stem = f'{img_id:012d}'
            img_path = osp.join(img_dir, stem + '.jpg')
            if not cv2.imwrite(img_path, image[..., ::-1].copy(),
                               [cv2.IMWRITE_JPEG_QUALITY, 95]):
                raise OSError(f'write_toy_coco: cannot write {img_path}')
            img_paths.append(img_path)
            images.append(
                dict(id=img_id, file_name=stem + '.jpg', height=height,
                     width=width))
            # instances: polygon outlines (holes filled, as COCO polygons)
            for cat_id, mask in things:
                polygons = mask_to_polygons(mask)
                covered = _fill_holes(mask)
                instances.append(
                    dict(id=len(instances) + 1, image_id=img_id,
                         category_id=cat_id, segmentation=polygons,
                         area=float(covered.sum()), bbox=_bbox(covered),
                         iscrowd=0))
            # panoptic: exact visible segments, ids 1..n (0 = void)
            pan = np.zeros((height, width), np.int64)
            segments = []
            for seg_id, (cat_id, mask) in enumerate(things + stuff, 1):
                pan[mask] = seg_id
                segments.append(
                    dict(id=seg_id, category_id=cat_id, iscrowd=0,
                         bbox=_bbox(mask), area=int(mask.sum())))
            rgb = np.stack([pan % 256, pan // 256 % 256, pan // 65536],
                           -1).astype(np.uint8)
            png_path = osp.join(pan_dir, stem + '.png')
            if not cv2.imwrite(png_path, rgb[..., ::-1].copy()):
                raise OSError(f'write_toy_coco: cannot write {png_path}')
            panoptic.append(
                dict(image_id=img_id, file_name=stem + '.png',
                     segments_info=segments))
        info = dict(
            description=f'mmfapn toy COCO ({split}), seed {seed}',
            version='1.0')
        inst_path = osp.join(ann_dir, f'instances_{split}2017.json')
        pan_path = osp.join(ann_dir, f'panoptic_{split}2017.json')
        _write_json(inst_path,
                    dict(info=info, images=images, annotations=instances,
                         categories=coco_categories()))
        _write_json(pan_path,
                    dict(info=info, images=images, annotations=panoptic,
                         categories=coco_categories(panoptic=True)))
        result.update({
            f'{split}_img_dir': img_dir,
            f'{split}_images': img_paths,
            f'instances_{split}': inst_path,
            f'panoptic_{split}': pan_path,
            f'panoptic_{split}_dir': pan_dir,
        })
    return result

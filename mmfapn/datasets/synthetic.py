"""Synthetic scenes whose object outlines matter.

Tests, the demo and the dataset generators in ``tools/data/`` write these
scenes in real on-disk formats (COCO, Cityscapes, ADE20K).  Each scene is a
textured background with filled shapes (discs, polygons), thin bars and
small objects: the kind of outline that coarse-to-fine upsampling blurs.
Everything is drawn with numpy from a seeded generator, so a seed gives the
same scene everywhere.
"""
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Tuple

import numpy as np

SHAPES = ('disc', 'polygon', 'bar', 'dot')


@dataclass
class SyntheticInstance:
    """One object: its class index (0-based, in ``[0, num_classes)``) and
    its boolean mask (H, W)."""
    label: int
    mask: np.ndarray
    shape: str


@dataclass
class SyntheticScene:
    """image: (H, W, 3) uint8 RGB; semantic: (H, W) uint8 with the class
    index of each pixel, ``background`` where no object is;
    instances: visible part of each object (later objects occlude
    earlier ones; fully hidden ones are dropped)."""
    image: np.ndarray
    semantic: np.ndarray
    instances: List[SyntheticInstance] = field(default_factory=list)
    background: int = 255


def _disc(h, w, rng, yy, xx):
    r = rng.uniform(0.06, 0.2) * min(h, w)
    cy, cx = rng.uniform(r, h - r), rng.uniform(r, w - r)
    return (yy - cy)**2 + (xx - cx)**2 <= r * r


def _polygon(h, w, rng, yy, xx):
    """A star-shaped polygon with 3-7 vertices (inside test by winding)."""
    n = int(rng.integers(3, 8))
    r = rng.uniform(0.08, 0.25) * min(h, w)
    cy, cx = rng.uniform(r, h - r), rng.uniform(r, w - r)
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    rad = r * rng.uniform(0.5, 1.0, n)
    vy, vx = cy + rad * np.sin(ang), cx + rad * np.cos(ang)
    inside = np.zeros((h, w), bool)
    j = n - 1
    for i in range(n):  # even-odd rule, vectorised over pixels
        cond = (vy[i] > yy) != (vy[j] > yy)
        xint = (vx[j] - vx[i]) * (yy - vy[i]) / (vy[j] - vy[i] + 1e-12) + vx[i]
        inside ^= cond & (xx < xint)
        j = i
    return inside


def _bar(h, w, rng, yy, xx):
    """A thin rotated bar, 1-4 px wide: a structure FPN tends to erase."""
    width = rng.uniform(1.0, 4.0)
    length = rng.uniform(0.3, 0.8) * max(h, w)
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    t = rng.uniform(0, np.pi)
    dy, dx = yy - cy, xx - cx
    along = dx * np.cos(t) + dy * np.sin(t)
    across = -dx * np.sin(t) + dy * np.cos(t)
    return (np.abs(along) <= length / 2) & (np.abs(across) <= width / 2)


def _dot(h, w, rng, yy, xx):
    """A small object, 2-6 px across."""
    r = rng.uniform(1.0, 3.0)
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    return np.maximum(np.abs(yy - cy), np.abs(xx - cx)) <= r


_DRAW = dict(disc=_disc, polygon=_polygon, bar=_bar, dot=_dot)


def check_int(owner: str, name: str, value, low: int,
              high: Optional[int] = None) -> None:
    """Raise TypeError/ValueError, prefixed with ``owner``, unless ``value``
    is an int in ``[low, high]`` (shared by the toy dataset writers)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f'{owner}: {name} must be an int, got {value!r}')
    if value < low or (high is not None and value > high):
        bounds = f'>= {low}' if high is None else f'in [{low}, {high}]'
        raise ValueError(f'{owner}: {name} must be {bounds}, got {value}')


def class_colors(num_classes: int) -> np.ndarray:
    """A fixed, well separated RGB colour per class, (num_classes, 3)."""
    rng = np.random.default_rng(12345)
    return rng.integers(40, 256, size=(num_classes, 3), dtype=np.uint8)


def render_scene(height: int,
                 width: int,
                 num_classes: int,
                 seed: int,
                 num_objects: Tuple[int, int] = (3, 7),
                 shapes: Tuple[str, ...] = SHAPES,
                 background: Optional[int] = 255,
                 noise: float = 12.0) -> SyntheticScene:
    """Render one scene.

    Args:
        height, width: image size (any, odd included).
        num_classes: object classes; class ``c`` always uses the same colour
            (plus noise), so the task is learnable.
        seed: seed of the scene.
        num_objects: inclusive range of the object count.
        shapes: which shape kinds to draw.
        background: label of background pixels in ``semantic`` (e.g. 255
            for "ignore", or a real class index for a "stuff" class).
        noise: std of the Gaussian pixel noise.
    """
    unknown = set(shapes) - set(SHAPES)
    if unknown:
        raise ValueError(f'unknown shapes {sorted(unknown)}; '
                         f'choose from {SHAPES}')
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    colors = class_colors(num_classes)
    # smooth textured background
    base = rng.uniform(60, 120, size=3)
    ramp = (yy / max(height - 1, 1))[..., None] * rng.uniform(-30, 30, 3)
    image = base + ramp + rng.normal(0, noise, size=(height, width, 3))
    semantic = np.full((height, width), 255 if background is None
                       else background, np.uint8)
    owner = np.full((height, width), -1, np.int64)
    objects = []
    count = int(rng.integers(num_objects[0], num_objects[1] + 1))
    for k in range(count):
        kind = shapes[int(rng.integers(len(shapes)))]
        mask = _DRAW[kind](height, width, rng, yy, xx)
        if not mask.any():
            continue
        label = int(rng.integers(num_classes))
        image[mask] = colors[label] + rng.normal(0, noise, (mask.sum(), 3))
        semantic[mask] = label
        owner[mask] = len(objects)
        objects.append((label, kind))
    instances = []
    for idx, (label, kind) in enumerate(objects):
        visible = owner == idx
        if visible.any():
            instances.append(SyntheticInstance(label, visible, kind))
    image = np.clip(image, 0, 255).astype(np.uint8)
    return SyntheticScene(image, semantic, instances,
                          255 if background is None else background)


def write_image_label_split(owner: str, img_dir: str, ann_dir: str,
                            count: int, seed: int, split_id: int,
                            scene: Callable[[int], Tuple[np.ndarray,
                                                         np.ndarray]],
                            stem: Callable[[int], str],
                            ann_suffix: str) -> List[Tuple[str, str]]:
    """Write ``count`` generated (JPEG image, 8-bit PNG label map) pairs of
    one split, the layout of ADE20K and COCO-Stuff-10K.

    Scene ``i`` is ``scene(s)`` with ``s`` drawn from ``(seed, split_id,
    i)``, so each split and image has its own reproducible scene.  Images
    are RGB arrays (written as BGR JPEG, quality 95, lossy as the real
    datasets ship); the label map is the ground truth.  A failed write
    raises ``OSError`` naming ``owner`` and the file.

    Returns:
        list[tuple[str, str]]: (image path, label path) per image.
    """
    import cv2
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(ann_dir, exist_ok=True)
    pairs: List[Tuple[str, str]] = []
    for i in range(count):
        scene_seed = int(np.random.SeedSequence(
            [seed, split_id, i]).generate_state(1)[0])
        image, labels = scene(scene_seed)
        img_path = osp.join(img_dir, stem(i) + '.jpg')
        ann_path = osp.join(ann_dir, stem(i) + ann_suffix)
        if not cv2.imwrite(img_path, image[..., ::-1].copy(),
                           [cv2.IMWRITE_JPEG_QUALITY, 95]):
            raise OSError(f'{owner}: cannot write {img_path}')
        if not cv2.imwrite(ann_path, labels):
            raise OSError(f'{owner}: cannot write {ann_path}')
        pairs.append((img_path, ann_path))
    return pairs

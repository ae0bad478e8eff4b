"""The demo's three generated splits, train / val / test, in the Cityscapes
on-disk format (``leftImg8bit/{split}/toycity``, ``gtFine/{split}/toycity``).

:func:`mmfapn.datasets.write_toy_cityscapes` writes train and val from
disjoint per-image seeds (``(seed, split, index)``).  The test split is its
val images past ``num_val``: written with seeds no train or val image
uses, then moved to ``test`` and renumbered from 0 (each split is its own
folder, as in Cityscapes).  Every recipe
choice is made on val; the report's numbers are on test.
"""
import hashlib
import os
import os.path as osp
import shutil
from typing import Dict, List

SPLITS = ('train', 'val', 'test')


def write_demo_splits(root: str, num_train: int, num_val: int,
                      num_test: int, height: int, width: int, seed: int,
                      num_classes: int) -> Dict[str, List[str]]:
    """Write the three splits under ``root`` (replaced if it exists);
    returns the image paths per split."""
    from mmfapn.datasets import write_toy_cityscapes
    from mmfapn.datasets.toy_cityscapes import CITY, IMG_SUFFIX, SEG_SUFFIX
    for name, value in (('num_train', num_train), ('num_val', num_val),
                        ('num_test', num_test)):
        if isinstance(value, bool) or not isinstance(value, int) \
                or value < 1:
            raise ValueError(f'{name} must be a positive int, got {value!r}')
    if osp.isdir(root):
        shutil.rmtree(root)
    written = write_toy_cityscapes(
        root, num_train=num_train, num_val=num_val + num_test,
        height=height, width=width, seed=seed, num_classes=num_classes)
    paths = dict(train=[p for p, _ in written['train']], val=[], test=[])
    for kind in ('leftImg8bit', 'gtFine'):
        os.makedirs(osp.join(root, kind, 'test', CITY))
    for i, (img, ann) in enumerate(written['val']):
        if i < num_val:
            paths['val'].append(img)
            continue
        stem = f'{CITY}_{i - num_val:06d}_000019'
        moved = []
        for path, kind, suffix in ((img, 'leftImg8bit', IMG_SUFFIX),
                                   (ann, 'gtFine', SEG_SUFFIX)):
            dst = osp.join(root, kind, 'test', CITY, stem + suffix)
            os.replace(path, dst)
            moved.append(dst)
        paths['test'].append(moved[0])
    return paths


def image_digests(root: str, split: str) -> Dict[str, str]:
    """SHA-1 of each image's bytes in ``root``'s ``split``, by file name."""
    folder = osp.join(root, 'leftImg8bit', split, 'toycity')
    out = {}
    for name in sorted(os.listdir(folder)):
        with open(osp.join(folder, name), 'rb') as f:
            out[name] = hashlib.sha1(f.read()).hexdigest()
    return out

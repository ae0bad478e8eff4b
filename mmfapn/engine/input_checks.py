"""One clear line for odd data, where the stack would fail cryptically.

What the stock mmdet/mmseg pipelines and a FaPN model do with odd images
(see ``tests/engine``):

- sizes that are not multiples of the backbone stride (e.g. 65x97) simply
  work: ResNet rounds up, the FaPN neck interpolates each top-down map to
  its lateral's size, predictions come back at the input size;
- grayscale and RGBA files loaded with ``LoadImageFromFile`` as configured
  by the stock configs (``color_type='color'``) become 3-channel BGR
  (OpenCV replicates gray, drops alpha) and work;
- loaded with ``color_type='unchanged'``, an RGBA image fails inside the
  data preprocessor (``The size of tensor a (4) must match the size of
  tensor b (3)``); a grayscale one is silently broadcast to 3 channels;
- a 1-pixel-high or -wide image fails in mmseg's ``LoadAnnotations``,
  which squeezes its label map to fewer than 2 dimensions (``The dim of
  value must be 2 or 3, but got 0``);
- an empty annotation list (e.g. a COCO file with ``"annotations": []``,
  whose images mmdet's ``filter_empty_gt`` then drops) fails while the
  dataset is built (``need at least one array to concatenate``), or with
  ``serialize_data=False`` leaves an ``InfiniteSampler`` looping forever.

:class:`CheckImage` (a pipeline step after ``LoadImageFromFile``) names the
first three problems; :func:`build_loop_checked` (used by
``tools/train.py`` and ``tools/test.py``) names the last one.
"""
import os.path as osp
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.registry import TRANSFORMS


class EmptyDatasetError(ValueError):
    """A dataset has no samples (empty annotation list, all filtered)."""


@TRANSFORMS.register_module()
class CheckImage(BaseTransform):
    """Check the loaded image: size and number of channels.

    Put it right after ``LoadImageFromFile`` (before ``LoadAnnotations``).
    Registered in mmengine's root ``TRANSFORMS``, so mmdet and mmseg
    pipelines find it as ``dict(type='CheckImage')``.

    Required keys: ``img`` (H, W) or (H, W, C). Optional: ``img_path``.
    Modified keys: none.

    Args:
        min_size (int): smallest allowed height and width. Default 2: a
            1-pixel-high or -wide label map breaks mmseg's
            ``LoadAnnotations``, and a ResNet reduces such an image to one
            pixel at every stage.  Set 32 (the backbone stride) to also
            reject images whose deepest features would be one padded pixel.
        channels (int): channels the model expects. Default 3 (BGR).
    """

    def __init__(self, min_size: int = 2, channels: int = 3) -> None:
        if not isinstance(min_size, int) or min_size < 1:
            raise ValueError(f'CheckImage: min_size must be a positive int, '
                             f'got {min_size!r}')
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f'CheckImage: channels must be a positive int, '
                             f'got {channels!r}')
        self.min_size = min_size
        self.channels = channels

    def transform(self, results: dict) -> dict:
        img = results.get('img')
        name = results.get('img_path') or '<image>'
        if not isinstance(img, np.ndarray) or img.ndim not in (2, 3):
            shape = getattr(img, 'shape', type(img).__name__)
            raise ValueError(f'CheckImage: image {name!r} must be an (H, W) '
                             f'or (H, W, C) array, got {shape}')
        h, w = img.shape[:2]
        if h < self.min_size or w < self.min_size:
            raise ValueError(
                f'CheckImage: image {name!r} is {h}x{w} pixels, smaller '
                f'than min_size={self.min_size} (too small for the backbone '
                'and the label loader); resize or drop it')
        c = 1 if img.ndim == 2 else img.shape[2]
        if c != self.channels:
            kind = {1: 'grayscale', 2: 'grayscale+alpha',
                    4: 'RGBA/BGRA'}.get(c, f'{c}-channel')
            raise ValueError(
                f'CheckImage: image {name!r} is {kind} ({c} channels, shape '
                f'{tuple(img.shape)}); the model expects {self.channels}: '
                "load it with LoadImageFromFile(color_type='color'), which "
                'converts it')
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(min_size={self.min_size}, '
                f'channels={self.channels})')


def _describe_dataset(cfg: Optional[dict]) -> str:
    if not isinstance(cfg, dict):
        return repr(cfg)
    parts = [str(cfg.get('type', '?'))]
    for key in ('data_root', 'ann_file', 'data_prefix', 'filter_cfg'):
        value = cfg.get(key)
        if value:
            if key == 'ann_file' and cfg.get('data_root') and not osp.isabs(
                    str(value)):
                value = osp.join(cfg['data_root'], value)
            parts.append(f'{key}={value!r}')
    return ' '.join(parts)


def _empty_dataset_error(split: str, dataset_cfg) -> EmptyDatasetError:
    return EmptyDatasetError(
        f'{split} dataset is empty: {_describe_dataset(dataset_cfg)} gives '
        '0 samples (an empty annotation list, no files found, or every '
        'image filtered out, e.g. by filter_empty_gt)')


def _raised_by_serialize(exc: BaseException) -> bool:
    """mmengine's ``_serialize_data`` concatenates the per-sample buffers;
    with no sample numpy raises ``need at least one array``."""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name == '_serialize_data':
            return True
        tb = tb.tb_next
    return False


def build_loop_checked(runner, split: str):
    """Build ``runner``'s ``split`` loop ('train', 'val' or 'test'; the
    Runner keeps it) and raise :class:`EmptyDatasetError` naming the
    dataset if it has no samples."""
    if split not in ('train', 'val', 'test'):
        raise ValueError(f'split must be train, val or test, got {split!r}')
    loader_cfg = runner.cfg.get(f'{split}_dataloader') or {}
    dataset_cfg = loader_cfg.get('dataset') if isinstance(loader_cfg,
                                                          dict) else None
    try:
        loop = getattr(runner, f'{split}_loop')
    except ValueError as e:
        if _raised_by_serialize(e):
            raise _empty_dataset_error(split, dataset_cfg) from e
        raise
    dataloader = getattr(loop, 'dataloader', None)
    dataset = getattr(dataloader, 'dataset', None)
    if dataset is not None and len(dataset) == 0:
        raise _empty_dataset_error(split, dataset_cfg)
    return loop

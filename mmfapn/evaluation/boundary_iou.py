"""Boundary mIoU: semantic-segmentation mIoU restricted to bands around the
ground-truth outlines (FaPN paper, Table 2).

The paper reports mIoU "over pixels within n px of an object outline"
(n = 3, 5, 8, 12) but its evaluation code is unpublished.  This module
defines it precisely:

- the band of width ``n`` is the set of valid pixels (ground truth
  ``!= ignore_index``) whose Euclidean distance (between pixel centres) to
  the nearest valid pixel of a *different* ground-truth label is ``<= n``;
  ``ignore_index`` pixels are never in the band and never count as a label
  change (a class next to an ignored region has no boundary there);
- per class, intersection and union of prediction and ground truth are
  accumulated over the band pixels of all images (as mmseg's ``IoUMetric``
  does over all pixels);
- ``bIoU@n`` is the mean over classes of those IoUs (classes whose band
  union is empty are left out, as in ``IoUMetric``); ``bIoU`` is the mean of
  ``bIoU@n`` over the widths.

It is a different number from Boundary IoU (Cheng et al., CVPR 2021), an
instance-mask metric with an inner band only.

Band computation is exact and vectorised: a valid pixel ``p`` is in the band
iff the disc ``{q : |q - p| <= n}`` contains a valid label other than
``label(p)``, i.e. iff the maximum and the minimum of the valid labels over
the disc differ.  Both are computed with separable passes (running
maximum/minimum along rows, then the disc's rows combined with shifted
element-wise maxima/minima), O(n) numpy operations per width on whole
arrays, no per-pixel Python loop.  The cost grows linearly with the
pixel count and with the widths, not with the content
(``tools/analysis/benchmark_boundary_iou.py`` times it; figures in
``docs/model_families.md``).
"""
import math
import warnings
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger, print_log

try:  # mmseg's METRICS when mmseg is installed; else mmengine's root
    from mmseg.registry import METRICS
except ImportError:  # pragma: no cover - exercised without mmseg only
    from mmengine.registry import METRICS

ArrayLike = Union[np.ndarray, torch.Tensor]


def _to_numpy(x: ArrayLike, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if not isinstance(x, np.ndarray):
        raise TypeError(f'{name} must be a numpy array or torch tensor, got '
                        f'{type(x).__name__}')
    if x.ndim == 3 and x.shape[0] == 1:  # (1, H, W) as mmseg stores maps
        x = x[0]
    if x.ndim != 2:
        raise ValueError(f'{name} must be a (H, W) label map, got shape '
                         f'{x.shape}')
    if not np.issubdtype(x.dtype, np.integer):
        raise TypeError(f'{name} must hold integer labels, got dtype '
                        f'{x.dtype}')
    return x


def _check_widths(widths) -> Tuple[int, ...]:
    if isinstance(widths, (int, np.integer)) and not isinstance(widths, bool):
        widths = (widths, )
    if not isinstance(widths, (list, tuple)) or not widths:
        raise TypeError('widths must be a non-empty sequence of positive '
                        f'ints, got {widths!r}')
    for n in widths:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise TypeError(f'widths must be ints (pixels), got {n!r} in '
                            f'{widths!r}')
        if n < 1:
            raise ValueError(f'widths must be >= 1 pixel, got {n} in '
                             f'{widths!r}')
    if len(set(widths)) != len(widths):
        raise ValueError(f'widths must be distinct, got {widths!r}')
    return tuple(int(n) for n in widths)


def _row_filters(x: np.ndarray, max_half: int, reduce) -> List[np.ndarray]:
    """``out[w][y, x] = reduce(x[y, x-w : x+w+1])`` (pixels outside the
    image left out) for ``w = 0 .. max_half``; one pass per ``w``."""
    out = [x]
    for _ in range(max_half):
        prev = out[-1]
        cur = prev.copy()
        reduce(cur[:, 1:], prev[:, :-1], out=cur[:, 1:])
        reduce(cur[:, :-1], prev[:, 1:], out=cur[:, :-1])
        out.append(cur)
    return out


def _disc_filter(rows: List[np.ndarray], radius: int, reduce) -> np.ndarray:
    """Reduce over the Euclidean disc of ``radius``: row ``y + dy`` of the
    disc spans ``|dx| <= isqrt(radius^2 - dy^2)``."""
    height = rows[0].shape[0]
    out = rows[radius].copy()
    for dy in range(1, min(radius, height - 1) + 1):
        r = rows[math.isqrt(radius * radius - dy * dy)]
        reduce(out[:-dy], r[dy:], out=out[:-dy])
        reduce(out[dy:], r[:-dy], out=out[dy:])
    return out


def boundary_bands(gt: ArrayLike,
                   widths: Sequence[int] = (3, 5, 8, 12),
                   ignore_index: int = 255) -> np.ndarray:
    """Boundary bands of a ground-truth label map.

    Args:
        gt: (H, W) integer labels (a (1, H, W) map is squeezed).
        widths: band widths ``n`` in pixels.
        ignore_index: label of pixels that are neither in a band nor a
            label change.

    Returns:
        np.ndarray: bool (len(widths), H, W); ``[k, y, x]`` is True iff
        ``gt[y, x] != ignore_index`` and some pixel with a different label
        other than ``ignore_index`` lies within Euclidean distance
        ``widths[k]`` of it.
    """
    gt = _to_numpy(gt, 'gt')
    widths = _check_widths(widths)
    valid = gt != ignore_index
    labels = gt[valid]
    if labels.size and labels.min() >= 0 and labels.max() < 255:
        dtype, low, high = np.uint8, 0, 255
    else:
        dtype = np.int64
        low, high = np.iinfo(dtype).min, np.iinfo(dtype).max
    # Ignored pixels get a value that can never win the reduction.  The
    # disc always contains its (valid) centre, so max != min over the disc
    # iff it holds a valid label other than the centre's.
    hi = np.where(valid, gt, low).astype(dtype)
    lo = np.where(valid, gt, high).astype(dtype)
    max_half = max(widths)
    max_rows = _row_filters(hi, max_half, np.maximum)
    min_rows = _row_filters(lo, max_half, np.minimum)
    bands = np.empty((len(widths), ) + gt.shape, bool)
    for k, n in enumerate(widths):
        bands[k] = (_disc_filter(max_rows, n, np.maximum) !=
                    _disc_filter(min_rows, n, np.minimum)) & valid
    return bands


def boundary_intersect_and_union(
        pred: ArrayLike,
        gt: ArrayLike,
        num_classes: int,
        widths: Sequence[int] = (3, 5, 8, 12),
        ignore_index: int = 255) -> np.ndarray:
    """Per-width, per-class areas over the boundary bands of one image.

    Args:
        pred: (H, W) predicted labels in ``[0, num_classes)``.
        gt: (H, W) ground-truth labels in ``[0, num_classes)`` or
            ``ignore_index``.
        num_classes: number of classes C.
        widths: band widths (W of them).
        ignore_index: ignored ground-truth label.

    Returns:
        np.ndarray: int64 (4, W, C): intersection, union, predicted area and
        ground-truth area of each class inside each band.
    """
    pred = _to_numpy(pred, 'pred')
    gt = _to_numpy(gt, 'gt')
    widths = _check_widths(widths)
    if pred.shape != gt.shape:
        raise ValueError(f'pred and gt shapes differ: {pred.shape} vs '
                         f'{gt.shape}')
    valid = gt != ignore_index
    bad = gt[valid]
    bad = bad[(bad < 0) | (bad >= num_classes)]
    if bad.size:
        raise ValueError(
            f'gt holds label {int(bad[0])}, outside [0, {num_classes}) and '
            f'not ignore_index={ignore_index}')
    bad = pred[(pred < 0) | (pred >= num_classes)]
    if bad.size:
        raise ValueError(f'pred holds label {int(bad[0])}, outside '
                         f'[0, {num_classes})')
    # widths ascending -> nested bands; level = index of the narrowest band
    # that contains the pixel, then one bincount and a cumulative sum.
    order = np.argsort(widths)
    bands = boundary_bands(gt, [widths[i] for i in order], ignore_index)
    num_w = len(widths)
    level = np.full(gt.shape, num_w, np.int64)
    for k in range(num_w - 1, -1, -1):
        level[bands[k]] = k
    inside = level < num_w
    c = num_classes
    index = (level[inside] * c + gt[inside].astype(np.int64)) * c + \
        pred[inside].astype(np.int64)
    conf = np.bincount(index, minlength=num_w * c * c).reshape(num_w, c, c)
    conf = np.cumsum(conf, axis=0)  # level <= k  <=>  inside band k
    intersect = np.diagonal(conf, axis1=1, axis2=2)
    area_gt = conf.sum(2)
    area_pred = conf.sum(1)
    union = area_gt + area_pred - intersect
    areas = np.stack([intersect, union, area_pred, area_gt])
    inverse = np.argsort(order)  # back to the caller's width order
    return areas[:, inverse]


@METRICS.register_module()
class BoundaryIoUMetric(BaseMetric):
    """mIoU within ``n`` pixels of the ground-truth outlines (boundary mIoU).

    See the module docstring for the exact definition.  Use it beside
    mmseg's ``IoUMetric``::

        val_evaluator = [
            dict(type='IoUMetric', iou_metrics=['mIoU']),
            dict(type='BoundaryIoUMetric', widths=(3, 5, 8, 12)),
        ]

    Reported keys (percent, 2 decimals like ``IoUMetric``): ``bIoU@n`` for
    each width and ``bIoU``, their mean.  The per-class table (one column
    per width) is printed to the log.

    Args:
        widths (Sequence[int]): band widths in pixels. Default (3, 5, 8, 12)
            as the paper's Table 2.
        ignore_index (int): ignored ground-truth label. Default 255.
        nan_to_num (float, optional): replace NaN per-class IoUs (classes
            absent from a band in both prediction and ground truth) by this
            value *before* averaging; None leaves them out. Default None.
        collect_device (str): 'cpu' or 'gpu', for distributed collection.
        prefix (str, optional): prefix of the reported keys.
    """
    default_prefix: Optional[str] = None

    def __init__(self,
                 widths: Sequence[int] = (3, 5, 8, 12),
                 ignore_index: int = 255,
                 nan_to_num: Optional[float] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 **kwargs) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.widths = _check_widths(
            tuple(widths) if isinstance(widths, list) else widths)
        if isinstance(ignore_index, bool) or not isinstance(
                ignore_index, (int, np.integer)):
            raise TypeError(f'ignore_index must be an int, got '
                            f'{ignore_index!r}')
        self.ignore_index = int(ignore_index)
        self.nan_to_num = nan_to_num

    def _num_classes(self) -> int:
        meta = self.dataset_meta
        if not meta or 'classes' not in meta:
            raise ValueError(
                'BoundaryIoUMetric needs dataset_meta["classes"] (the Runner '
                'sets it from the dataset); got dataset_meta='
                f'{meta!r}')
        return len(meta['classes'])

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Accumulate the band areas of each sample.

        ``data_samples``: model outputs as dicts (mmengine's ``Evaluator``
        converts ``SegDataSample``) with ``pred_sem_seg.data`` and
        ``gt_sem_seg.data``, (1, H, W).
        """
        num_classes = self._num_classes()
        for sample in data_samples:
            pred = sample['pred_sem_seg']['data']
            gt = sample['gt_sem_seg']['data']
            self.results.append(
                boundary_intersect_and_union(pred, gt, num_classes,
                                             self.widths, self.ignore_index))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """``bIoU@n`` per width and their mean ``bIoU``; logs per class."""
        logger: MMLogger = MMLogger.get_current_instance()
        intersect, union, _, _ = np.sum(results, axis=0)
        with np.errstate(divide='ignore', invalid='ignore'):
            iou = intersect / union  # (W, C), NaN where the union is empty
        if self.nan_to_num is not None:
            iou = np.nan_to_num(iou, nan=self.nan_to_num)
        metrics = OrderedDict()
        with warnings.catch_warnings():  # all-NaN width -> NaN, no warning
            warnings.simplefilter('ignore', RuntimeWarning)
            per_width = np.nanmean(iou, axis=1)
        for n, value in zip(self.widths, per_width):
            metrics[f'bIoU@{n}'] = float(np.round(value * 100, 2))
        metrics['bIoU'] = float(np.round(np.mean(per_width) * 100, 2))

        class_names = self.dataset_meta['classes']
        try:
            from prettytable import PrettyTable
        except ImportError:  # pragma: no cover - mmseg brings prettytable
            PrettyTable = None
        columns = OrderedDict(Class=list(class_names))
        for n, row in zip(self.widths, iou):
            columns[f'bIoU@{n}'] = np.round(row * 100, 2).tolist()
        if PrettyTable is not None:
            table = PrettyTable()
            for key, val in columns.items():
                table.add_column(key, val)
            text = table.get_string()
        else:
            text = '\n'.join(
                ' '.join(str(col[i]) for col in columns.values())
                for i in range(len(class_names)))
        print_log('per class boundary IoU results:', logger)
        print_log('\n' + text, logger=logger)
        return metrics

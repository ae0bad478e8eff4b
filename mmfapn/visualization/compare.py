"""Side-by-side semantic predictions with boundary errors highlighted:
image | ground truth | model A | model B | ...

In a prediction panel, correctly labelled pixels keep their class colour,
muted; wrong pixels are drawn in :data:`ERROR_IN_BAND` (red) when they lie
within ``band`` pixels of a ground-truth outline (the band of
:class:`~mmfapn.evaluation.BoundaryIoUMetric`) and
in :data:`ERROR_OTHER` (cyan, a colour of no Cityscapes class) elsewhere.  Ignored ground-truth pixels are
black in every panel.  Each panel's caption gives the image's mIoU and
boundary mIoU at that band.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from mmfapn.evaluation.boundary_iou import (boundary_bands,
                                            boundary_intersect_and_union)
from .drawing import (TITLE_HEIGHT, boundary_mask, colorize, grid, resize_to,
                      titled)

ERROR_IN_BAND = (230, 0, 0)
ERROR_OTHER = (0, 255, 255)
LEGEND = ('red: wrong within {band} px of a true outline, cyan: wrong '
          'elsewhere, black: ignored')


def _check_maps(pred: np.ndarray, gt: np.ndarray) -> None:
    if pred.shape != gt.shape or pred.ndim != 2:
        raise ValueError(f'prediction {pred.shape} and ground truth '
                         f'{gt.shape} must be (H, W) maps of the same size')


def image_scores(pred: np.ndarray,
                 gt: np.ndarray,
                 num_classes: int,
                 band: int = 3,
                 ignore_index: int = 255) -> Dict[str, float]:
    """One image: ``mIoU`` and ``bIoU`` (boundary mIoU at ``band`` px) in
    percent over the classes present in ground truth or prediction, the
    number of wrong pixels ``errors`` and of those within the band
    ``band_errors``."""
    _check_maps(pred, gt)
    # first: it checks that both maps hold labels in [0, num_classes)
    areas = boundary_intersect_and_union(pred, gt, num_classes, (band, ),
                                         ignore_index)
    valid = gt != ignore_index
    p, g = pred[valid].astype(np.int64), gt[valid].astype(np.int64)
    conf = np.bincount(g * num_classes + p,
                       minlength=num_classes**2).reshape(num_classes, -1)
    inter = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - inter
    miou = float(np.mean(inter[union > 0] / union[union > 0])) * 100
    b_inter, b_union = areas[0, 0], areas[1, 0]
    biou = float(np.mean(b_inter[b_union > 0] / b_union[b_union > 0])) * 100 \
        if (b_union > 0).any() else float('nan')
    wrong = valid & (pred != gt)
    in_band = boundary_bands(gt, (band, ), ignore_index)[0]
    return dict(mIoU=miou, bIoU=biou, errors=int(wrong.sum()),
                band_errors=int((wrong & in_band).sum()))


def error_panel(pred: np.ndarray,
                gt: np.ndarray,
                palette: np.ndarray,
                band: int = 3,
                ignore_index: int = 255) -> np.ndarray:
    """(H, W, 3) RGB: the prediction with errors highlighted (module
    docstring)."""
    _check_maps(pred, gt)
    valid = gt != ignore_index
    out = colorize(pred, palette, ignore_index=-1)
    out = (out * 0.55 + 115 * 0.45).astype(np.uint8)  # muted class colours
    out[~valid] = 0
    wrong = valid & (pred != gt)
    in_band = boundary_bands(gt, (band, ), ignore_index)[0]
    out[wrong & in_band] = ERROR_IN_BAND
    out[wrong & ~in_band] = ERROR_OTHER
    return out


def gt_panel(gt: np.ndarray, palette: np.ndarray,
             ignore_index: int = 255) -> np.ndarray:
    """Ground truth in the palette with its outlines in white."""
    out = colorize(gt, palette, ignore_index)
    out[boundary_mask(gt, ignore_index)] = 255
    return out


def compare_figure(samples: Sequence[dict],
                   labels: Sequence[str],
                   num_classes: int,
                   palette: np.ndarray,
                   band: int = 3,
                   ignore_index: int = 255,
                   max_width: int = 320) -> Tuple[np.ndarray, List[dict]]:
    """The comparison figure.

    Args:
        samples: per image a dict with ``image`` (H, W, 3) RGB uint8,
            ``gt`` (H, W) labels, ``preds`` (one (H, W) label map per entry
            of ``labels``) and optionally ``name``.
        labels: model names, e.g. ``('FPN', 'FaPN')``.
        num_classes, palette: classes and their (C, 3) colours.
        band: boundary band width in pixels for highlighting and ``bIoU``.
        max_width: panels wider than this are scaled down (nearest).

    Returns:
        (figure, scores): the RGB figure (one row per sample plus a legend
        strip) and per sample ``{label: image_scores(...)}``.
    """
    if not samples:
        raise ValueError('compare_figure needs at least one sample')
    rows, scores = [], []
    for k, s in enumerate(samples):
        image, gt = s['image'], np.asarray(s['gt'])
        preds = s['preds']
        if len(preds) != len(labels):
            raise ValueError(f'sample {k}: {len(preds)} predictions for '
                             f'{len(labels)} labels {list(labels)}')
        h, w = gt.shape
        if image.shape[:2] != (h, w):
            raise ValueError(f'sample {k}: image {image.shape[:2]} and '
                             f'ground truth {(h, w)} differ in size')
        scale = min(1.0, max_width / w)
        dh, dw = max(1, round(h * scale)), max(1, round(w * scale))
        row = [
            titled(resize_to(image, dh, dw), s.get('name', f'image {k}')),
            titled(resize_to(gt_panel(gt, palette, ignore_index), dh, dw,
                             nearest=True), 'ground truth')
        ]
        per = {}
        for label, pred in zip(labels, preds):
            pred = np.asarray(pred)
            sc = image_scores(pred, gt, num_classes, band, ignore_index)
            per[label] = sc
            panel = error_panel(pred, gt, palette, band, ignore_index)
            row.append(titled(
                resize_to(panel, dh, dw, nearest=True),
                f'{label} mIoU {sc["mIoU"]:.1f} bIoU@{band} {sc["bIoU"]:.1f}'))
        rows.append(row)
        scores.append(per)
    fig = grid(rows)
    legend = titled(np.zeros((0, fig.shape[1], 3), np.uint8),
                    LEGEND.format(band=band))
    assert legend.shape[0] == TITLE_HEIGHT
    return grid([[fig], [legend]]), scores


def load_ground_truth(dataset, index: int) -> Tuple[str, np.ndarray]:
    """(image path, (H, W) label map) of sample ``index`` of an mmseg
    dataset, read with mmseg's ``LoadAnnotations`` (so ``label_map`` and
    ``reduce_zero_label`` apply as in evaluation)."""
    from mmseg.datasets.transforms import LoadAnnotations
    info = dataset.get_data_info(index)
    results = dict(
        seg_map_path=info['seg_map_path'],
        reduce_zero_label=info.get('reduce_zero_label', False),
        label_map=info.get('label_map'),
        seg_fields=[])
    results = LoadAnnotations()(results)
    return info['img_path'], results['gt_seg_map']


def pick_indices(num: int, length: int,
                 indices: Optional[Sequence[int]] = None) -> List[int]:
    """``indices`` checked against ``length``, or the first ``num``."""
    if indices:
        bad = [i for i in indices if not 0 <= i < length]
        if bad:
            raise ValueError(f'indices {bad} out of range for a dataset of '
                             f'{length} images')
        return list(indices)
    if num < 1:
        raise ValueError(f'num must be >= 1, got {num}')
    return list(range(min(num, length)))

"""BoundaryIoUMetric: hand-worked cases, agreement with a brute-force
reference on random maps, use beside IoUMetric in an Evaluator, errors."""
import math
import uuid

import numpy as np
import pytest
import torch

from mmfapn.evaluation import (BoundaryIoUMetric, boundary_bands,
                               boundary_intersect_and_union)


def _sample(pred, gt):
    return dict(
        pred_sem_seg=dict(data=torch.as_tensor(pred)[None]),
        gt_sem_seg=dict(data=torch.as_tensor(gt)[None]))


def _evaluate(pairs, widths, num_classes, **kwargs):
    metric = BoundaryIoUMetric(widths=widths, **kwargs)
    metric.dataset_meta = dict(
        classes=tuple(f'c{i}' for i in range(num_classes)))
    metric.process({}, [_sample(p, g) for p, g in pairs])
    return metric.evaluate(len(pairs))


def _pct(x):
    return round(100 * x, 2)


# ---------------------------------------------------------------- by hand
def test_straight_boundary_shifted_by_one_pixel():
    # GT: columns 0-4 class 0, 5-9 class 1. The prediction moves the
    # boundary one pixel right (column 5 predicted 0).  Band of width n
    # (n <= 4): columns 5-n .. 4+n.  Class 0: gt n cols, pred n+1 cols,
    # intersection n -> n/(n+1).  Class 1: gt n cols, pred n-1 cols,
    # intersection n-1 -> (n-1)/n.  n = 12 covers the whole 4x10 image.
    gt = np.zeros((4, 10), np.int64)
    gt[:, 5:] = 1
    pred = np.zeros_like(gt)
    pred[:, 6:] = 1
    bands = boundary_bands(gt, (1, 2, 3))
    for k, n in enumerate((1, 2, 3)):
        cols = np.zeros(10, bool)
        cols[5 - n:5 + n] = True
        np.testing.assert_array_equal(bands[k], np.tile(cols, (4, 1)))
    res = _evaluate([(pred, gt)], (1, 2, 3, 12), 2)
    assert res['bIoU@1'] == _pct((1 / 2 + 0) / 2) == 25.0
    assert res['bIoU@2'] == _pct((2 / 3 + 1 / 2) / 2) == 58.33
    assert res['bIoU@3'] == _pct((3 / 4 + 2 / 3) / 2) == 70.83
    assert res['bIoU@12'] == _pct((20 / 24 + 16 / 20) / 2) == 81.67
    assert res['bIoU'] == pytest.approx((25 + 58.33 + 70.83 + 81.67) / 4,
                                        abs=0.01)
    # a perfect prediction scores 100 at every width
    res = _evaluate([(gt, gt)], (1, 2, 3, 12), 2)
    assert all(v == 100.0 for v in res.values())


def test_thin_structure():
    # A 1-px line of class 1 (row 4) across a 9x9 class-0 image, erased by
    # the prediction.  Width 1: rows 3-5 (27 px): class 0 gt 18, pred 27,
    # inter 18 -> 2/3; class 1 -> 0.  Width 2: rows 2-6: 36/45 and 0.
    gt = np.zeros((9, 9), np.int64)
    gt[4] = 1
    pred = np.zeros_like(gt)
    res = _evaluate([(pred, gt)], (1, 2), 2)
    assert res['bIoU@1'] == _pct((18 / 27 + 0) / 2) == 33.33
    assert res['bIoU@2'] == _pct((36 / 45 + 0) / 2) == 40.0
    # the plain mIoU would hide it less: class 0 = 72/81, class 1 = 0


def test_band_is_euclidean():
    # One class-1 pixel in a class-0 image: the width-2 band is the
    # Euclidean disc of radius 2 (13 pixels: the diagonal neighbour at
    # sqrt(2) is in, the knight's move at sqrt(5) is out), not the 5x5
    # square (25 pixels) a chessboard distance would give.
    gt = np.zeros((7, 7), np.int64)
    gt[3, 3] = 1
    band = boundary_bands(gt, (2, ))[0]
    yy, xx = np.mgrid[:7, :7]
    expected = (yy - 3)**2 + (xx - 3)**2 <= 4
    np.testing.assert_array_equal(band, expected)
    assert band.sum() == 13 and band[2, 2] and not band[2, 1]


def test_ignore_regions():
    # Columns 0-3 class 0, 4-5 ignore, 6-9 class 1: labels change only
    # across the ignored gap, 3 px away.  Widths 1 and 2: empty band (NaN);
    # width 3: columns 3 and 6.  Predicting class 0 everywhere: class 0
    # gt 2, pred 4, inter 2 -> 1/2; class 1 -> 0.
    gt = np.zeros((2, 10), np.int64)
    gt[:, 4:6] = 255
    gt[:, 6:] = 1
    bands = boundary_bands(gt, (1, 2, 3))
    assert not bands[0].any() and not bands[1].any()
    assert bands[2].any(0).nonzero()[0].tolist() == [3, 6]
    assert not bands[:, :, 4:6].any()  # ignored pixels never in a band
    pred = np.zeros_like(gt)
    res = _evaluate([(pred, gt)], (1, 2, 3), 2)
    assert math.isnan(res['bIoU@1']) and math.isnan(res['bIoU@2'])
    assert res['bIoU@3'] == 25.0
    # predictions on ignored pixels do not matter
    pred[:, 4:6] = 1
    assert _evaluate([(pred, gt)], (3, ), 2)['bIoU@3'] == 25.0
    # nan_to_num replaces the empty classes before averaging
    assert _evaluate([(pred, gt)], (1, 3), 2,
                     nan_to_num=0)['bIoU@1'] == 0.0


def test_class_absent_from_image():
    gt = np.zeros((4, 10), np.int64)
    gt[:, 5:] = 1
    pred = np.zeros_like(gt)
    pred[:, 6:] = 1
    # class 2 is in neither map: NaN, left out of the mean (same as C=2)
    assert _evaluate([(pred, gt)], (1, ), 3)['bIoU@1'] == 25.0
    # predicted inside the band but absent from the ground truth: IoU 0,
    # counted.  Width 1 (columns 4, 5): class 0 -> 1, class 1 (gt col 5,
    # no prediction) -> 0, class 2 (pred col 5) -> 0.
    pred[:, 5] = 2
    assert _evaluate([(pred, gt)], (1, ), 3)['bIoU@1'] == _pct(1 / 3)


def test_accumulates_over_images():
    # sums areas over images (not a mean of per-image IoUs)
    gt = np.zeros((4, 10), np.int64)
    gt[:, 5:] = 1
    shifted = np.zeros_like(gt)
    shifted[:, 6:] = 1
    # width 1 over two images: class 0 inter 8, union 12; class 1 inter 4,
    # union 8
    res = _evaluate([(shifted, gt), (gt, gt)], (1, ), 2)
    assert res['bIoU@1'] == _pct((8 / 12 + 4 / 8) / 2)


# ------------------------------------------------------ brute-force check
def _reference(pred, gt, widths, num_classes, ignore_index=255):
    """Straight from the definition, one pixel at a time."""
    h, w = gt.shape
    ys, xs = np.mgrid[:h, :w]
    dist = np.full((h, w), np.inf)
    for y in range(h):
        for x in range(w):
            if gt[y, x] == ignore_index:
                continue
            other = (gt != gt[y, x]) & (gt != ignore_index)
            if other.any():
                dist[y, x] = np.sqrt((ys[other] - y)**2 +
                                     (xs[other] - x)**2).min()
    areas = np.zeros((4, len(widths), num_classes), np.int64)
    for k, n in enumerate(widths):
        band = dist <= n
        for c in range(num_classes):
            g, p = (gt == c) & band, (pred == c) & band
            areas[:, k, c] = [(g & p).sum(), (g | p).sum(), p.sum(), g.sum()]
    return dist, areas


@pytest.mark.parametrize('seed', range(6))
def test_matches_brute_force_on_random_maps(seed):
    rng = np.random.default_rng(seed)
    h, w, c = 23 + seed, 31 - seed, 5
    coarse = rng.integers(0, c, (5, 6))
    gt = coarse[np.arange(h) * 5 // h][:, np.arange(w) * 6 // w]
    gt[rng.random((h, w)) < 0.05] = rng.integers(0, c)  # speckles
    gt[rng.random((h, w)) < 0.08] = 255  # scattered ignore
    gt[:3, :7] = 255  # an ignored block
    pred = np.where(rng.random((h, w)) < 0.3, rng.integers(0, c, (h, w)),
                    np.where(gt == 255, 0, gt))
    widths = (8, 1, 2, 3, 5)  # unsorted on purpose
    dist, expected = _reference(pred, gt, widths, c)
    bands = boundary_bands(gt, widths)
    for k, n in enumerate(widths):
        np.testing.assert_array_equal(bands[k], dist <= n)
    got = boundary_intersect_and_union(pred, gt, c, widths)
    np.testing.assert_array_equal(got, expected)


# ------------------------------------------------- Evaluator, registries
def test_beside_iou_metric_in_evaluator(mmseg_scope, capsys):
    from mmengine.evaluator import Evaluator
    from mmengine.logging import MMLogger
    from mmseg.structures import SegDataSample
    from mmengine.structures import PixelData
    MMLogger.get_instance(f'biou-{uuid.uuid4()}')  # log to captured stdout
    classes = ('road', 'car', 'pole')
    evaluator = Evaluator([
        dict(type='IoUMetric', iou_metrics=['mIoU']),
        dict(type='BoundaryIoUMetric', widths=(1, 3, 100)),
    ])
    evaluator.dataset_meta = dict(classes=classes)
    rng = np.random.default_rng(0)
    samples = []
    for i in range(3):
        gt = np.zeros((17, 21), np.int64)
        gt[5 + i:, 9:] = 1
        gt[:, 3] = 2  # a thin pole
        gt[-2:] = 255
        pred = np.where(rng.random(gt.shape) < 0.2, 1, np.where(
            gt == 255, 0, gt))
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=torch.as_tensor(gt)[None])
        s.pred_sem_seg = PixelData(data=torch.as_tensor(pred)[None])
        samples.append(s)
    evaluator.process(samples)
    res = evaluator.evaluate(3)
    assert {'aAcc', 'mIoU', 'bIoU@1', 'bIoU@3', 'bIoU@100', 'bIoU'} <= \
        set(res)
    # every valid pixel is within 100 px of another label: the band is the
    # whole valid image, so bIoU@100 is mmseg's mIoU
    assert res['bIoU@100'] == pytest.approx(res['mIoU'], abs=0.011)
    assert res['bIoU@1'] < res['bIoU@3'] < res['bIoU@100']
    out = capsys.readouterr().out
    assert 'per class boundary IoU results' in out
    assert 'pole' in out and 'bIoU@3' in out


def test_registered_in_mmseg(mmseg_scope):
    from mmseg.registry import METRICS
    metric = METRICS.build(dict(type='BoundaryIoUMetric'))
    assert isinstance(metric, BoundaryIoUMetric)
    assert metric.widths == (3, 5, 8, 12)


def test_accepts_tensors_and_1hw_maps():
    gt = torch.zeros(1, 4, 10, dtype=torch.long)
    gt[..., 5:] = 1
    a = boundary_intersect_and_union(gt, gt, 2, (1, ))
    b = boundary_intersect_and_union(gt[0].numpy(), gt[0].numpy(), 2, (1, ))
    np.testing.assert_array_equal(a, b)
    assert a[0, 0].tolist() == [4, 4]


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize('widths, exc, text', [
    ((), TypeError, 'non-empty sequence'),
    ((0, 3), ValueError, 'widths must be >= 1 pixel, got 0'),
    ((3.5, ), TypeError, 'widths must be ints (pixels), got 3.5'),
    ((3, 3), ValueError, 'widths must be distinct, got (3, 3)'),
])
def test_bad_widths(widths, exc, text):
    with pytest.raises(exc) as err:
        BoundaryIoUMetric(widths=widths)
    assert text in str(err.value)


def test_bad_maps():
    gt = np.zeros((4, 6), np.int64)
    with pytest.raises(ValueError, match=r'gt holds label 7, outside '
                       r'\[0, 3\) and not ignore_index=255'):
        g = gt.copy()
        g[1, 1] = 7
        boundary_intersect_and_union(gt, g, 3)
    with pytest.raises(ValueError, match=r'pred holds label 3, outside'):
        boundary_intersect_and_union(gt + 3, gt, 3)
    with pytest.raises(ValueError, match=r'shapes differ: \(4, 5\) vs '
                       r'\(4, 6\)'):
        boundary_intersect_and_union(gt[:, :5], gt, 3)
    with pytest.raises(TypeError, match='integer labels, got dtype float'):
        boundary_bands(gt.astype(float))
    with pytest.raises(ValueError, match=r'\(H, W\) label map, got shape '
                       r'\(2, 4, 6\)'):
        boundary_bands(np.zeros((2, 4, 6), np.int64))
    metric = BoundaryIoUMetric()
    with pytest.raises(ValueError, match='needs dataset_meta'):
        metric.process({}, [_sample(gt, gt)])

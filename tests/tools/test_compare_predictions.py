"""tools/analysis/compare_predictions.py and mmfapn.visualization.compare:
error colours, per-image scores worked by hand, figure layout, and the tool
on the demo's two checkpoints."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def _run_tool(argv):
    """The command line as a user runs it (exit status, stdout, stderr)."""
    return subprocess.run(
        [sys.executable,
         str(REPO / 'tools' / 'analysis' / 'compare_predictions.py'), *argv],
        capture_output=True, text=True, timeout=600)


PALETTE = np.array([[10, 20, 30], [200, 100, 0], [0, 0, 250]], np.uint8)


def _scene():
    """Left half class 0, right half class 1 (outline between columns 9 and
    10), an ignored top row; the prediction is wrong at one pixel next to
    the outline and one far from it."""
    gt = np.zeros((12, 20), np.int64)
    gt[:, 10:] = 1
    gt[0] = 255
    pred = gt.copy()
    pred[0] = 2  # ignored in ground truth: never an error
    pred[5, 9] = 1  # 1 px from the outline
    pred[6, 1] = 2  # 8 px from it
    return pred, gt


def test_error_panel_colours():
    from mmfapn.visualization.compare import ERROR_IN_BAND, ERROR_OTHER, error_panel
    pred, gt = _scene()
    panel = error_panel(pred, gt, PALETTE, band=3)
    assert panel.shape == (12, 20, 3) and panel.dtype == np.uint8
    assert tuple(panel[5, 9]) == ERROR_IN_BAND
    assert tuple(panel[6, 1]) == ERROR_OTHER
    assert (panel[0] == 0).all()  # ignored
    muted = (PALETTE[1] * 0.55 + 115 * 0.45).astype(np.uint8)
    assert tuple(panel[3, 15]) == tuple(muted)
    # a wider band takes in the far error too (9 px from class 1)
    panel = error_panel(pred, gt, PALETTE, band=9)
    assert tuple(panel[6, 1]) == ERROR_IN_BAND


def test_image_scores_worked_by_hand():
    from mmfapn.visualization.compare import image_scores
    pred, gt = _scene()
    s = image_scores(pred, gt, num_classes=3, band=3)
    # valid rows 1..11: 11 x 10 px per class.  class 0: 110 gt, 108 right,
    # its 2 wrong pixels go to classes 1 and 2; class 1: 110 gt + 1 wrong
    # = 111 predicted; class 2: 1 predicted, 0 gt.
    iou0, iou1, iou2 = 108 / 110, 110 / 111, 0.0
    assert s['mIoU'] == pytest.approx((iou0 + iou1 + iou2) / 3 * 100)
    # band 3: columns 7..12 (3 px either side of the outline), rows 1..11:
    # 33 px per class; only the (5, 9) error is inside
    b0, b1 = 32 / 33, 33 / 34
    assert s['bIoU'] == pytest.approx((b0 + b1) / 2 * 100)
    assert s['errors'] == 2 and s['band_errors'] == 1


def test_compare_figure_layout_and_errors():
    from mmfapn.visualization.compare import compare_figure
    from mmfapn.visualization.drawing import GAP, TITLE_HEIGHT
    pred, gt = _scene()
    image = np.full(gt.shape + (3, ), 90, np.uint8)
    right = np.where(gt == 255, 0, gt)
    sample = dict(image=image, gt=gt, preds=[pred, right])
    fig, scores = compare_figure([sample, sample], ['A', 'B'], 3, PALETTE)
    row = 12 + TITLE_HEIGHT
    assert fig.shape == (2 * row + TITLE_HEIGHT + 2 * GAP, 4 * 20 + 3 * GAP,
                         3)
    assert scores[0]['B'] == dict(mIoU=100.0, bIoU=100.0, errors=0,
                                  band_errors=0)
    assert scores[1]['A']['errors'] == 2
    # panels wider than max_width are scaled down
    fig, _ = compare_figure([sample], ['A', 'B'], 3, PALETTE, max_width=10)
    assert fig.shape[1] == 4 * 10 + 3 * GAP
    with pytest.raises(ValueError, match=r'sample 0: 1 predictions for 2 '
                       r"labels \['A', 'B'\]"):
        compare_figure([dict(image=image, gt=gt, preds=[pred])], ['A', 'B'],
                       3, PALETTE)
    with pytest.raises(ValueError, match=r'prediction \(12, 19\) and ground '
                       r'truth \(12, 20\)'):
        compare_figure([dict(image=image, gt=gt, preds=[pred[:, 1:]])],
                       ['A'], 3, PALETTE)


def test_pick_indices():
    from mmfapn.visualization.compare import pick_indices
    assert pick_indices(3, 10) == [0, 1, 2]
    assert pick_indices(30, 4) == [0, 1, 2, 3]
    assert pick_indices(2, 10, [7, 1]) == [7, 1]
    with pytest.raises(ValueError, match=r'indices \[10\] out of range for '
                       'a dataset of 10 images'):
        pick_indices(1, 10, [3, 10])


@pytest.mark.slow
def test_tool_on_the_demo_checkpoints(demo_run, tmp_path):
    from PIL import Image

    from mmfapn.visualization.drawing import GAP, TITLE_HEIGHT
    runs = {r['label']: r for r in demo_run['report']['runs']}
    argv = []
    for label in ('FPN', 'FaPN'):
        argv += [str(next(Path(runs[label]['work_dir']).glob('*.py'))),
                 runs[label]['checkpoint']]
    out = tmp_path / 'cmp.png'
    proc = _run_tool(argv + ['--indices', '1', '0', '--band', '5', '--out',
                             str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    with Image.open(out) as im:
        assert im.format == 'PNG'
        row = 128 + TITLE_HEIGHT
        assert im.size == (4 * 256 + 3 * GAP,
                           2 * row + TITLE_HEIGHT + 2 * GAP)
    lines = proc.stdout.splitlines()
    # the table (after mmengine's "Loads checkpoint" lines)
    lines = lines[next(i for i, line in enumerate(lines)
                       if line.startswith('image ')):]
    assert 'FPN bIoU@5' in lines[0] and 'FaPN bIoU@5' in lines[0]
    assert lines[1].startswith('toycity_000001_000019_leftImg8bit.png')
    assert lines[2].startswith('toycity_000000_000019_leftImg8bit.png')
    # the demo's figure shows the same first image with the same scores
    fig_scores = demo_run['report']['figures']['figure_scores'][0]
    values = [float(v) for v in lines[2].split()[1:3]]
    assert values == pytest.approx(
        [fig_scores['FPN']['mIoU'], fig_scores['FaPN']['mIoU']], abs=0.006)


@pytest.mark.slow
def test_tool_rejects_mismatched_inputs(demo_run, tmp_path):
    runs = {r['label']: r for r in demo_run['report']['runs']}
    cfg = str(next(Path(runs['FPN']['work_dir']).glob('*.py')))
    ckpt = runs['FPN']['checkpoint']
    proc = _run_tool([cfg, ckpt, cfg, str(tmp_path / 'missing.pth')])
    assert proc.returncode == 2
    assert 'checkpoint file not found' in proc.stderr
    proc = _run_tool([cfg, ckpt, cfg, ckpt, '--indices', '2'])
    assert proc.returncode == 2
    assert 'indices [2] out of range for a dataset of 2 images' in \
        proc.stderr

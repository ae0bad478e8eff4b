"""tools/demo.py (``make demo``): the whole pipeline in a tiny setting.

The run itself is the session fixture ``demo_run`` (tests/conftest.py):
2 iterations of batch 2 per model on 4 + 2 generated 128x256 images.
These tests check that the report's numbers are the run's (re-evaluated
here from the checkpoints with an independent accumulation), that the
figures are valid PNGs of the size their layout implies, and that progress
is printed.
"""
import json
import os.path as osp
import re
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
METRICS = ('mIoU', 'bIoU@3', 'bIoU@5', 'bIoU@8', 'bIoU@12', 'bIoU')


def _png_size(path):
    from PIL import Image
    with Image.open(path) as im:
        assert im.format == 'PNG', path
        im.verify()
    with Image.open(path) as im:
        im.load()  # decodes the whole file: fails on a truncated one
        return im.size[1], im.size[0]  # (h, w)


def _layout_height(panel_heights, gap):
    return sum(panel_heights) + gap * (len(panel_heights) - 1)


@pytest.mark.slow
def test_report_lists_both_runs(demo_run):
    report = demo_run['report']
    runs = {r['label']: r for r in report['runs']}
    assert set(runs) == {'FPN', 'FaPN'}
    fpn, fapn = runs['FPN'], runs['FaPN']
    for r in (fpn, fapn):
        assert r['iters'] == 2 and r['batch_size'] == 2
        assert set(METRICS) <= set(r['metrics'])
        for k in METRICS:
            assert 0.0 <= r['metrics'][k] <= 100.0, (r['label'], k)
        assert osp.isfile(r['checkpoint'])
        assert r['train_seconds'] > 0
    # same recipe, FaPN's extra parameters are its neck's only
    assert fapn['params'] > fpn['params']
    for k in METRICS:
        assert report['delta'][k] == pytest.approx(
            fapn['metrics'][k] - fpn['metrics'][k])
    md = Path(demo_run['work_dir'], 'report.md').read_text()
    for r in (fpn, fapn):
        row = next(line for line in md.splitlines()
                   if line.startswith(f'| {r["label"]} |'))
        cells = [c.strip() for c in row.strip('|').split('|')]
        assert cells[1] == f'{r["params"]:,}'
        assert [float(c) for c in cells[4:10]] == pytest.approx(
            [round(r['metrics'][k], 2) for k in METRICS], abs=0.006)
    # the verdict follows the numbers
    better = [k for k in METRICS if report['delta'][k] > 0]
    if len(better) == len(METRICS):
        assert 'FaPN beat FPN on every metric' in report['verdict']
    elif not better:
        assert 'FaPN did not beat FPN on any metric' in report['verdict']
    else:
        assert f'on {", ".join(better)} only' in report['verdict']
    assert report['verdict'] in md
    assert report['machine']['cores'] >= 1 and report['machine']['cpu']
    # every figure the report shows exists
    for link in re.findall(r'!\[[^]]*\]\(([^)]+)\)', md):
        assert osp.isfile(osp.join(demo_run['work_dir'], link)), link


@pytest.mark.slow
def test_report_numbers_are_the_checkpoints(demo_run):
    """Re-evaluate both checkpoints on the validation images with a
    confusion matrix accumulated here (not mmseg's IoUMetric, not the
    Runner) and compare with the report."""
    from mmfapn.datasets.toy_cityscapes import IMG_SUFFIX, SEG_SUFFIX
    from mmfapn.demo.drawing import read_rgb
    from mmfapn.demo.inference import load_model, predict
    from mmfapn.evaluation import boundary_intersect_and_union
    import cv2
    work = Path(demo_run['work_dir'])
    gts = sorted((work / 'data' / 'toycity' / 'gtFine' / 'val').rglob(
        '*' + SEG_SUFFIX))
    assert len(gts) == 2
    for run in demo_run['report']['runs']:
        cfg = next(Path(run['work_dir']).glob('*.py'))
        model = load_model(str(cfg), run['checkpoint'])
        c = model.decode_head.num_classes
        conf = np.zeros((c, c), np.int64)
        band = np.zeros((4, 4, c), np.int64)
        for gt_path in gts:
            img_path = str(
                work / 'data' / 'toycity' / 'leftImg8bit' / 'val' /
                gt_path.parent.name / gt_path.name.replace(
                    SEG_SUFFIX, IMG_SUFFIX))
            gt = cv2.imread(str(gt_path), cv2.IMREAD_UNCHANGED)
            pred = predict(model, read_rgb(img_path)).result
            pred = pred.pred_sem_seg.data[0].numpy()
            valid = gt != 255
            conf += np.bincount(
                gt[valid].astype(np.int64) * c + pred[valid],
                minlength=c * c).reshape(c, c)
            band += boundary_intersect_and_union(pred, gt, c, (3, 5, 8, 12))
        inter = np.diag(conf)
        union = conf.sum(0) + conf.sum(1) - inter
        miou = np.mean(inter[union > 0] / union[union > 0]) * 100
        b = [np.mean(band[0, k][band[1, k] > 0] / band[1, k][band[1, k] > 0])
             * 100 for k in range(4)]
        got = run['metrics']
        assert got['mIoU'] == pytest.approx(miou, abs=0.01), run['label']
        assert [got[f'bIoU@{n}'] for n in (3, 5, 8, 12)] == pytest.approx(
            b, abs=0.01), run['label']
        assert got['bIoU'] == pytest.approx(np.mean(b), abs=0.02)


@pytest.mark.slow
def test_figures_are_pngs_of_the_expected_size(demo_run):
    from mmfapn.demo.drawing import GAP, TITLE_HEIGHT
    fig = demo_run['report']['figures']
    h, w = 128, 256  # the demo config's crop_size: images are not resized
    row = h + TITLE_HEIGHT
    # compare: 2 rows of image | gt | FPN | FaPN, then the legend strip
    compare = (_layout_height([row, row, TITLE_HEIGHT], GAP), 4 * w + 3 * GAP)
    assert _png_size(fig['compare']) == compare
    # alignment: 3 FAMs (strides 4, 8, 16) of 5 panels, then prediction
    assert _png_size(fig['alignment']) == (_layout_height([row] * 4, GAP),
                                           5 * w + 4 * GAP)
    # overview: one comparison row with its legend, then 4 FAM panels
    assert _png_size(fig['overview']) == (_layout_height(
        [_layout_height([row, TITLE_HEIGHT], GAP), row], GAP), compare[1])
    assert fig['figure_sizes']['compare'] == list(compare)
    assert [s['stride'] for s in fig['alignment_stats']] == [4, 8, 16]
    assert [s['size'] for s in fig['alignment_stats']] == [[32, 64],
                                                            [16, 32], [8, 16]]
    with open(osp.join(osp.dirname(fig['alignment']),
                       'alignment.json')) as f:
        assert json.load(f)['fams'] == fig['alignment_stats']


@pytest.mark.slow
def test_progress_and_eta_are_printed(demo_run):
    out = demo_run['stdout']
    for step in ('[1/4]', '[2/4] training FPN', '[3/4] training FaPN',
                 '[4/4]'):
        assert step in out
    for label in ('FPN', 'FaPN'):
        assert re.search(rf'{label} \[#+\.*\] 1/2 .*s/it .*ETA \d+:\d\d',
                         out), out[-2000:]
        assert re.search(rf'{label} \[#+\] 2/2 ', out)
    assert demo_run['report']['verdict'] in out


def _pipeline():
    from mmfapn.demo import pipeline
    return pipeline


@pytest.mark.parametrize('argv, message', [
    (['--iters', '0'], 'iters must be a positive int, got 0'),
    (['--num-classes', '20'], 'num_classes must be in [2, 19]'),
    (['--fapn-config', 'no/such.py'], "config file not found: 'no/such.py'"),
    (['--threads', '0'], 'threads must be >= 1, got 0'),
])
def test_bad_options_fail_with_one_line(argv, message, capsys, tmp_path):
    rc = _pipeline().main(argv + ['--work-dir', str(tmp_path)])
    assert rc == 2
    err = capsys.readouterr().err
    assert message in err and err.count('\n') == 1
    assert not any(tmp_path.iterdir())  # nothing written


def test_schedule_is_rescaled_for_both_models():
    """--iters rescales warm-up and poly decay, validation and checkpoint
    identically for the two configs; only the neck differs."""
    from mmfapn.engine import load_config
    p = _pipeline()
    opts = p.DemoOptions(iters=120, batch_size=3)
    cfgs = []
    for label, path in zip(opts.labels, (opts.fpn_config, opts.fapn_config)):
        cfg = load_config(path)
        p.configure_run(cfg, opts, label, '/data/x', f'/w/{label}')
        cfgs.append(cfg)
    fpn, fapn = cfgs
    assert fpn.train_cfg.max_iters == 120 and fpn.train_cfg.val_interval \
        == 120
    assert fpn.default_hooks.checkpoint.interval == 120
    # 600-iteration base: warm-up 0..50 -> 0..10, poly 50..600 -> 10..120
    assert [(s.type, s.begin, s.end) for s in fpn.param_scheduler] == [
        ('LinearLR', 0, 10), ('PolyLR', 10, 120)]
    assert fpn.train_dataloader.batch_size == 3
    assert fpn.train_dataloader.dataset.data_root == '/data/x'
    assert fpn.val_dataloader.dataset.data_root == '/data/x'
    assert fpn.randomness == fapn.randomness == dict(seed=0)
    a, b = fpn.to_dict(), fapn.to_dict()
    assert a['model']['neck']['type'] == 'FPN'
    assert b['model']['neck']['type'] == 'FaPN'
    a['model']['neck'].pop('type')
    b['model']['neck'].pop('type')
    for key in ('model', 'train_dataloader', 'val_dataloader',
                'optim_wrapper', 'param_scheduler', 'train_cfg',
                'val_evaluator', 'randomness'):
        assert a[key] == b[key], key
    assert [e['type'] for e in a['val_evaluator']] == [
        'IoUMetric', 'BoundaryIoUMetric']

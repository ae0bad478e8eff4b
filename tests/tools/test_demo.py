"""tools/demo.py (``make demo``): the whole protocol in a tiny setting.

The run itself is the session fixture ``demo_run`` (tests/conftest.py):
the default 3 paired seeds, 2 iterations of batch 2 per run on 4 train /
2 val / 2 test generated 128x256 images.  These tests check that the
report has one row per seed, that its numbers are the checkpoints' on the
test split (re-evaluated here with an independent accumulation), that the
statistics and verdict follow from the per-seed numbers, that the figures
and the plot are PNGs of the stated size, that the pairs were paired, and
that one progress bar runs across all runs.
"""
import json
import math
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


def _table(md, header_start):
    """Rows (lists of cells) of the markdown table whose header starts
    with ``header_start``."""
    lines = md.splitlines()
    i = next(i for i, line in enumerate(lines)
             if line.startswith(header_start))
    rows = []
    for line in lines[i + 2:]:
        if not line.startswith('|'):
            break
        rows.append([c.strip() for c in line.strip('|').split('|')])
    return rows


@pytest.mark.slow
def test_report_has_one_row_per_seed(demo_run):
    report = demo_run['report']
    assert report['seeds'] == [0, 1, 2]
    assert len(report['per_seed']) == 3
    assert [(r['seed'], r['label']) for r in report['runs']] == [
        (s, m) for s in (0, 1, 2) for m in ('FPN', 'FaPN')]
    for r in report['runs']:
        assert r['iters'] == 2 and r['batch_size'] == 2
        for k in METRICS:
            assert 0.0 <= r['metrics'][k] <= 100.0, (r['label'], k)
        assert osp.isfile(r['checkpoint']) and r['train_seconds'] > 0
    md = Path(demo_run['work_dir'], 'report.md').read_text()
    rows = _table(md, '| seed | FPN mIoU |')
    assert [row[0] for row in rows] == ['0', '1', '2']
    runs = {(r['seed'], r['label']): r for r in report['runs']}
    for row in rows:
        s = int(row[0])
        fpn, fapn = runs[s, 'FPN']['metrics'], runs[s, 'FaPN']['metrics']
        assert [float(c) for c in row[1:5]] == pytest.approx(
            [fpn['mIoU'], fapn['mIoU'], fpn['bIoU'], fapn['bIoU']],
            abs=0.006)
        assert [float(c) for c in row[5:]] == pytest.approx(
            [fapn[k] - fpn[k] for k in METRICS], abs=0.006)
    assert report['data']['eval_split'] == 'test'
    assert 'on the test split, on which no choice was made' in md
    # same recipe, FaPN's extra parameters are its neck's only
    assert runs[0, 'FaPN']['params'] > runs[0, 'FPN']['params']


@pytest.mark.slow
def test_statistics_and_verdict_follow_the_seeds(demo_run):
    """Mean/std per model and the paired t-interval recomputed here with
    numpy and scipy from the per-run metrics."""
    from scipy import stats
    report = demo_run['report']
    runs = {(r['seed'], r['label']): r['metrics'] for r in report['runs']}
    for k in METRICS:
        for m in ('FPN', 'FaPN'):
            v = np.array([runs[s, m][k] for s in (0, 1, 2)])
            assert report['models'][m][k]['mean'] == pytest.approx(v.mean())
            assert report['models'][m][k]['std'] == pytest.approx(
                v.std(ddof=1))
        d = np.array([runs[s, 'FaPN'][k] - runs[s, 'FPN'][k]
                      for s in (0, 1, 2)])
        half = stats.t.ppf(0.975, 2) * d.std(ddof=1) / math.sqrt(3)
        got = report['difference'][k]
        assert got['mean'] == pytest.approx(d.mean(), abs=1e-9)
        assert got['low'] == pytest.approx(d.mean() - half, abs=1e-9)
        assert got['high'] == pytest.approx(d.mean() + half, abs=1e-9)
    text = report['verdict']
    for k in ('mIoU', 'bIoU'):
        d = report['difference'][k]
        if d['low'] > 0:
            assert f'FaPN is better than FPN in {k} (' in text
        elif d['high'] < 0:
            assert f'FaPN is worse than FPN in {k} (' in text
        else:
            assert ('no significant difference between FaPN and FPN in '
                    f'{k} (') in text
        assert f'[{d["low"]:+.2f}, {d["high"]:+.2f}]' in text
    md = Path(demo_run['work_dir'], 'report.md').read_text()
    assert text in md and text in demo_run['stdout']
    summary = _table(md, '| model | mIoU |')
    assert summary[0][0] == 'FPN (mean ± std)'
    assert summary[2][0] == 'FaPN − FPN (paired, 95% CI)'


@pytest.mark.slow
def test_report_numbers_are_the_checkpoints_on_test(demo_run):
    """Re-evaluate every checkpoint on the test images with a confusion
    matrix accumulated here (not mmseg's IoUMetric, not the Runner)."""
    from mmfapn.datasets.toy_cityscapes import IMG_SUFFIX, SEG_SUFFIX
    from mmfapn.visualization.drawing import read_rgb
    from mmfapn.apis.inference import load_model, predict
    from mmfapn.evaluation import boundary_intersect_and_union
    import cv2
    work = Path(demo_run['work_dir'])
    gts = sorted((work / 'data' / 'toycity' / 'gtFine' / 'test').rglob(
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
                work / 'data' / 'toycity' / 'leftImg8bit' / 'test' /
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
        key = (run['seed'], run['label'])
        assert got['mIoU'] == pytest.approx(miou, abs=0.01), key
        assert [got[f'bIoU@{n}'] for n in (3, 5, 8, 12)] == pytest.approx(
            b, abs=0.01), key
        assert got['bIoU'] == pytest.approx(np.mean(b), abs=0.02)


@pytest.mark.slow
def test_pairs_were_paired(demo_run):
    runs = demo_run['report']['runs']
    for s in (0, 1, 2):
        pair = [r for r in runs if r['seed'] == s]
        assert pair[0]['backbone_digest'] == pair[1]['backbone_digest']
        assert pair[0]['data_digest'] == pair[1]['data_digest']
        assert pair[0]['backbone_init'] == pair[1]['backbone_init']
    assert len({r['backbone_digest'] for r in runs}) == 3
    assert len({r['data_digest'] for r in runs}) == 3


@pytest.mark.slow
def test_figures_and_plot_are_pngs_of_the_expected_size(demo_run):
    from mmfapn.visualization.drawing import GAP, TITLE_HEIGHT
    from mmfapn.demo.plot import PLOT_SIZE
    fig = demo_run['report']['figures']
    assert fig['seed'] == 2  # the last seed, fixed in advance
    h, w = 128, 256  # the demo config's image_size (test: not resized)
    row = h + TITLE_HEIGHT
    # compare: 2 rows of image | gt | FPN | FaPN, then the legend strip
    compare = (_layout_height([row, row, TITLE_HEIGHT], GAP), 4 * w + 3 * GAP)
    assert _png_size(fig['compare']) == compare
    # alignment: 3 FAMs (strides 4, 8, 16) of 5 panels, then prediction
    assert _png_size(fig['alignment']) == (_layout_height([row] * 4, GAP),
                                           5 * w + 4 * GAP)
    assert _png_size(fig['overview']) == (_layout_height(
        [_layout_height([row, TITLE_HEIGHT], GAP), row], GAP), compare[1])
    assert _png_size(fig['biou_plot']) == (PLOT_SIZE[1], PLOT_SIZE[0])
    assert fig['figure_sizes']['compare'] == list(compare)
    assert [s['stride'] for s in fig['alignment_stats']] == [4, 8, 16]
    with open(osp.join(osp.dirname(fig['alignment']),
                       'alignment.json')) as f:
        assert json.load(f)['fams'] == fig['alignment_stats']
    md = Path(demo_run['work_dir'], 'report.md').read_text()
    for link in re.findall(r'!\[[^]]*\]\(([^)]+)\)', md):
        assert osp.isfile(osp.join(demo_run['work_dir'], link)), link
    assert 'figures/biou_vs_n.png' in md


@pytest.mark.slow
def test_offset_statistics_per_seed_and_fam(demo_run):
    report = demo_run['report']
    offsets = report['offsets']
    assert [o['seed'] for o in offsets] == [0, 1, 2]
    for o in offsets:
        assert [f['stride'] for f in o['fams']] == [4, 8, 16]
        assert [f['name'] for f in o['fams']] == [
            f'neck.align_modules.{i}' for i in range(3)]
        for f in o['fams']:
            assert f['num_images'] == 2
            assert 0 <= f['mean_displacement_px'] <= f['max_displacement_px']
            assert 0 < f['mean_mask'] < 1
    md = Path(demo_run['work_dir'], 'report.md').read_text()
    rows = _table(md, '| seed | FAM |')
    assert len(rows) == 9


@pytest.mark.slow
def test_one_progress_bar_across_all_runs(demo_run):
    out = demo_run['stdout']
    bars = re.findall(r'\[([#.]+)\]\s+(\d+)% (\d+)/(\d+) it \| seed (\d) '
                      r'(FPN|FaPN) (\d)/2 .*s/it .*ETA (\d+:\d\d|\?)', out)
    assert [int(b[2]) for b in bars] == list(range(1, 13))
    assert {int(b[3]) for b in bars} == {12}
    assert [(int(b[4]), b[5]) for b in bars[::2]] == [
        (s, m) for s in (0, 1, 2) for m in ('FPN', 'FaPN')]
    assert bars[-1][0] == '#' * len(bars[-1][0]) and bars[-1][1] == '100'
    for step in ('[1/5] writing', '[2/5] seed 0', '[4/5] seed 2',
                 '[5/5] statistics'):
        assert step in out


def _pipeline():
    from mmfapn.demo import pipeline
    return pipeline


@pytest.mark.parametrize('argv, message', [
    (['--iters', '0'], 'iters must be a positive int, got 0'),
    (['--seeds', '0'], 'seeds must be a positive int, got 0'),
    (['--num-test', '0'], 'num_test must be a positive int, got 0'),
    (['--num-classes', '20'], 'num_classes must be in [2, 19]'),
    (['--offset-lr-mult', '0'], 'offset_lr_mult must be > 0, got 0.0'),
    (['--fapn-config', 'no/such.py'], "config file not found: 'no/such.py'"),
    (['--threads', '0'], 'threads must be >= 1, got 0'),
])
def test_bad_options_fail_with_one_line(argv, message, capsys, tmp_path):
    rc = _pipeline().main(argv + ['--work-dir', str(tmp_path)])
    assert rc == 2
    err = capsys.readouterr().err
    assert message in err and err.count('\n') == 1
    assert not any(tmp_path.iterdir())  # nothing written


def test_defaults_and_quick_mode_options():
    p = _pipeline()
    d = p.main_options([])
    assert (d.seeds, d.split, d.seed_list) == (3, 'test', [0, 1, 2])
    assert d.test_size == d.num_val
    q = p.main_options(['--seeds', '1', '--seed', '4', '--num-test', '7'])
    assert q.seed_list == [4] and q.test_size == 7
    assert p.argv_of(q) == ['--seeds', '1', '--seed', '4', '--num-test',
                            '7']


def test_schedule_and_splits_are_set_for_both_models():
    """--iters rescales warm-up and poly decay, validation and checkpoint
    identically for the two configs; training reads train, evaluation the
    chosen split; only the neck differs."""
    from mmfapn.engine import load_config
    p = _pipeline()
    opts = p.DemoOptions(iters=120, batch_size=3, offset_lr_mult=0.5)
    cfgs = []
    for label, path in zip(opts.labels, (opts.fpn_config, opts.fapn_config)):
        cfg = load_config(path)
        p.configure_run(cfg, opts, label, '/data/x', f'/w/{label}', seed=7,
                        backbone_init='/w/init.pth')
        cfgs.append(cfg)
    fpn, fapn = cfgs
    assert fpn.train_cfg.max_iters == 120 and fpn.train_cfg.val_interval \
        == 120
    assert fpn.default_hooks.checkpoint.interval == 120
    # 600-iteration base: warm-up 0..50 -> 0..10, poly 50..600 -> 10..120
    assert [(s.type, s.begin, s.end) for s in fpn.param_scheduler] == [
        ('LinearLR', 0, 10), ('PolyLR', 10, 120)]
    assert fpn.train_dataloader.batch_size == 3
    assert fpn.train_dataloader.dataset.data_prefix == dict(
        img_path='leftImg8bit/train', seg_map_path='gtFine/train')
    for key in ('val_dataloader', 'test_dataloader'):
        assert fpn[key].dataset.data_prefix == dict(
            img_path='leftImg8bit/test', seg_map_path='gtFine/test')
        assert fpn[key].dataset.data_root == '/data/x'
    assert fpn.randomness == fapn.randomness == dict(seed=7)
    assert fpn.model.backbone.init_cfg == dict(type='Pretrained',
                                               checkpoint='/w/init.pth')
    assert {v['lr_mult'] for v in
            fapn.optim_wrapper.paramwise_cfg.custom_keys.values()} == {0.5}
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
    val = p.DemoOptions(split='val')
    cfg = load_config(val.fpn_config)
    p.configure_run(cfg, val, 'FPN', '/d', '/w')
    assert cfg.val_dataloader.dataset.data_prefix['img_path'] == \
        'leftImg8bit/val'


@pytest.mark.slow
def test_quick_mode_one_seed(tmp_path):
    """``--seeds 1``: one pair, no interval, a verdict that claims
    nothing."""
    import subprocess
    import sys
    cmd = [sys.executable, str(REPO / 'tools' / 'demo.py'), '--seeds', '1',
           '--iters', '1', '--batch-size', '1', '--num-train', '2',
           '--num-val', '1', '--num-figures', '1', '--work-dir',
           str(tmp_path)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / 'report.json').read_text())
    assert report['seeds'] == [0] and len(report['runs']) == 2
    assert report['difference']['mIoU']['low'] is None
    assert report['verdict'].startswith('One seed gives no interval')
    md = (tmp_path / 'report.md').read_text()
    assert len(_table(md, '| seed | FPN mIoU |')) == 1
    assert '(one seed: no interval)' in md

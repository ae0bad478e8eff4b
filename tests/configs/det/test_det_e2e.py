"""End to end through the real entry points on generated COCO data:
``mim train mmdet`` trains the repo's Mask R-CNN and Panoptic FPN FaPN
configs (backbone reduced to ResNet-18 by a test-only child config written
to a temporary directory) for a few iterations on CPU; ``mim test mmdet``
evaluates the Mask R-CNN checkpoint with COCO bbox/segm mAP (pycocotools)
and the Panoptic FPN run reports PQ from ``CocoPanopticMetric`` in its
validation loop."""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
CONFIGS = osp.join(REPO, 'configs', 'det')
VENV_BIN = osp.dirname(sys.executable)

# Shared test-only overrides: ResNet-18 (no weights), the toy data at its
# native odd size (Resize to the same size keeps scale_factor), no worker
# processes, one epoch of 2 iterations (4 images, batch 2), a checkpoint.
COMMON = '''
train_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(data_root={root!r}, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(data_root={root!r}, pipeline=test_pipeline))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=1, val_interval={val_interval})
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1))
'''

MASK_RCNN = '''
_base_ = [{config!r}]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(97, 65), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(97, 65), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor'))
]
model = dict(
    backbone=dict(depth=18, init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512]),
    # an untrained model scores every box below 0.05; keep them all so
    # that pycocotools has detections to evaluate
    test_cfg=dict(rcnn=dict(score_thr=0.0)))
val_evaluator = dict(ann_file={root!r} + '/annotations/instances_val2017.json')
test_evaluator = val_evaluator
''' + COMMON

PANOPTIC = '''
_base_ = [{config!r}]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPanopticAnnotations'),
    dict(type='Resize', scale=(97, 65), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(97, 65), keep_ratio=True),
    dict(type='LoadPanopticAnnotations'),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor'))
]
model = dict(
    backbone=dict(depth=18, init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512]))
val_evaluator = dict(
    ann_file={root!r} + '/annotations/panoptic_val2017.json',
    seg_prefix={root!r} + '/annotations/panoptic_val2017/')
test_evaluator = val_evaluator
''' + COMMON


def write_child(tmp_path, template, config, root, val_interval=10):
    path = tmp_path / f'toy_{osp.basename(config)}'
    path.write_text(template.format(
        config=osp.join(CONFIGS, config), root=root,
        val_interval=val_interval))
    return str(path)


def mim(args, cwd, expect_ok=True):
    """Run ``mim`` from the venv (its python first on PATH, as the tool
    runs ``python tools/train.py`` of the installed mmdet)."""
    env = dict(os.environ)
    env['PATH'] = VENV_BIN + os.pathsep + env.get('PATH', '')
    env.setdefault('OMP_NUM_THREADS', '2')
    proc = subprocess.run([osp.join(VENV_BIN, 'mim')] + args + [
        '--gpus', '0', '--launcher', 'none'],
                          cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=900)
    if expect_ok:
        assert proc.returncode == 0, proc.stdout[-6000:]
    return proc


def metrics_from_log(out: str, prefix: str) -> dict:
    """``prefix/key: value`` pairs of the last evaluation line."""
    lines = [ln for ln in out.splitlines()
             if re.search(r'Epoch\((val|test)\)', ln) and f'{prefix}/' in ln]
    assert lines, out[-4000:]
    return {k: float(v) for k, v in re.findall(
        re.escape(prefix) + r'/(\w+): (-?[\d.]+|nan)', lines[-1])}


def train_losses(out: str) -> list:
    """(iteration, total loss) of each logged training iteration."""
    return [(int(i), float(v)) for i, v in re.findall(
        r'Epoch\(train\)\s+\[1\]\[(\d)/2\].*?\bloss: (-?[\d.]+|nan)', out)]


@pytest.fixture(scope='module')
def toy_root(tmp_path_factory):
    from mmfapn.datasets import write_toy_coco
    root = tmp_path_factory.mktemp('toy_coco_e2e')
    write_toy_coco(str(root), num_train=4, num_val=2, height=65, width=97,
                   seed=0)
    return str(root)


@pytest.mark.slow
def test_mask_rcnn_mim_train_then_test(tmp_path, toy_root):
    cfg = write_child(tmp_path, MASK_RCNN,
                      'mask_rcnn/mask-rcnn_r50_fapn_1x_coco.py', toy_root)
    work = tmp_path / 'work'
    out = mim(['train', 'mmdet', cfg, '--work-dir', str(work)],
              cwd=str(tmp_path)).stdout
    losses = train_losses(out)
    assert [i for i, _ in losses] == [1, 2], out[-4000:]
    assert all(0 < v < 1e3 for _, v in losses), losses
    for key in ('loss_rpn_cls', 'loss_cls', 'loss_bbox', 'loss_mask'):
        assert f'{key}: ' in out, key
    ckpt = work / 'epoch_1.pth'
    assert ckpt.is_file()

    out = mim(['test', 'mmdet', cfg, '--checkpoint', str(ckpt),
               '--work-dir', str(tmp_path / 'test')],
              cwd=str(tmp_path)).stdout
    results = metrics_from_log(out, 'coco')
    print('Mask R-CNN FaPN (R-18, 2 iterations) on toy COCO val:', results)
    for kind in ('bbox', 'segm'):
        keys = [f'{kind}_mAP{s}' for s in ('', '_50', '_75', '_s', '_m',
                                           '_l')]
        assert set(keys) <= set(results), sorted(results)
        assert 0.0 <= results[f'{kind}_mAP'] <= 1.0
        # -1 is pycocotools' "no ground truth in this area range" (no
        # large objects in 65x97 images)
        assert all(results[k] == -1.0 or 0.0 <= results[k] <= 1.0
                   for k in keys), results


@pytest.mark.slow
def test_panoptic_fpn_mim_train_reports_pq(tmp_path, toy_root):
    cfg = write_child(tmp_path, PANOPTIC,
                      'panoptic_fpn/panoptic-fpn_r50_fapn_1x_coco.py',
                      toy_root, val_interval=1)
    work = tmp_path / 'work'
    out = mim(['train', 'mmdet', cfg, '--work-dir', str(work)],
              cwd=str(tmp_path)).stdout
    losses = train_losses(out)
    assert [i for i, _ in losses] == [1, 2], out[-4000:]
    assert 'loss_seg: ' in out
    assert (work / 'epoch_1.pth').is_file()
    results = metrics_from_log(out, 'coco_panoptic')
    print('Panoptic FPN FaPN (R-18, 2 iterations) on toy COCO val:',
          results)
    keys = [f'{m}{s}' for m in ('PQ', 'SQ', 'RQ') for s in ('', '_th', '_st')]
    assert set(keys) <= set(results), sorted(results)
    assert all(0.0 <= results[k] <= 100.0 for k in keys), results


@pytest.mark.slow
def test_mim_train_names_a_malformed_annotation_file(tmp_path, toy_root):
    """What a user sees from ``mim train`` with a truncated annotation file
    (mmdet alone reports ``JSONDecodeError: Expecting value ...``)."""
    import shutil
    root = str(tmp_path / 'coco')
    shutil.copytree(toy_root, root)
    ann = osp.join(root, 'annotations', 'instances_train2017.json')
    with open(ann) as f:
        text = f.read()
    with open(ann, 'w') as f:
        f.write(text[:100])
    cfg = write_child(tmp_path, MASK_RCNN,
                      'mask_rcnn/mask-rcnn_r50_fapn_1x_coco.py', root)
    proc = mim(['train', 'mmdet', cfg, '--work-dir', str(tmp_path / 'w')],
               cwd=str(tmp_path), expect_ok=False)
    assert proc.returncode != 0
    assert f'ValueError: {ann}: malformed JSON' in proc.stdout, \
        proc.stdout[-3000:]
    assert not (tmp_path / 'w' / 'epoch_1.pth').exists()

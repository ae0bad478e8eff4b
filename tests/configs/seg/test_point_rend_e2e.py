"""End to end with the real tools: ``mim train mmseg`` trains a PointRend
FaPN model (the repo's R-50 config, backbone reduced to ResNet-18 by a
test-only child config) for a few iterations on CPU on generated
Cityscapes-format data, then ``mim test mmseg`` evaluates the checkpoint
with IoUMetric and BoundaryIoUMetric."""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

from mmfapn.datasets import write_toy_cityscapes

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
CONFIG = osp.join(REPO, 'configs', 'seg', 'point_rend',
                  'pointrend_r50_fapn_4xb2-80k_cityscapes-512x1024.py')
VENV_BIN = osp.dirname(sys.executable)

CHILD = '''
_base_ = [{config!r}]
crop_size = (64, 128)
model = dict(
    pretrained=None,
    data_preprocessor=dict(size=crop_size),
    backbone=dict(depth=18, init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512]))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(127, 63), ratio_range=(0.8, 1.25),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [  # native 63x127: odd sizes reach the network
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='IoUMetric', iou_metrics=['mIoU']),
    dict(type='BoundaryIoUMetric', widths=(3, 5, 8, 12)),
]
test_evaluator = val_evaluator
train_cfg = dict(max_iters=3, val_interval=1000)
default_hooks = dict(
    logger=dict(interval=1), checkpoint=dict(interval=3))
'''


def _mim(args, cwd):
    env = dict(os.environ)
    env['PATH'] = VENV_BIN + os.pathsep + env.get('PATH', '')
    env.setdefault('OMP_NUM_THREADS', '2')
    proc = subprocess.run([osp.join(VENV_BIN, 'mim')] + args,
                          cwd=cwd,
                          env=env,
                          stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT,
                          text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-6000:]
    return proc.stdout


@pytest.mark.slow
def test_mim_train_then_test(tmp_path):
    data = tmp_path / 'toy_cityscapes'
    write_toy_cityscapes(
        str(data), num_train=4, num_val=2, height=63, width=127, seed=0)
    cfg = tmp_path / 'pointrend_r18_fapn_toy.py'
    cfg.write_text(CHILD.format(config=CONFIG))
    work = tmp_path / 'work'
    roots = [f'{loader}.dataset.data_root={data}'
             for loader in ('train_dataloader', 'val_dataloader',
                            'test_dataloader')]
    out = _mim(['train', 'mmseg', str(cfg), '--gpus', '0', '--launcher',
                'none', '--work-dir', str(work), '--cfg-options'] + roots,
               cwd=str(tmp_path))
    # three logged iterations with a finite loss for both PointRend stages
    iters = re.findall(r'Iter\(train\)\s+\[\s*(\d)/3\].*?decode_0\.loss_ce:'
                       r' ([\d.]+).*?decode_1\.pointloss_ce: ([\d.]+)', out)
    assert [i for i, _, _ in iters] == ['1', '2', '3'], out[-3000:]
    ckpt = work / 'iter_3.pth'
    assert ckpt.is_file()

    out = _mim(['test', 'mmseg', str(cfg), '--checkpoint', str(ckpt),
                '--gpus', '0', '--launcher', 'none', '--work-dir',
                str(tmp_path / 'test'), '--cfg-options'] + roots,
               cwd=str(tmp_path))
    assert 'per class boundary IoU results' in out
    line = [ln for ln in out.splitlines() if 'Iter(test)' in ln and
            'mIoU' in ln]
    assert line, out[-3000:]
    values = {}
    for key in ('aAcc', 'mIoU', 'bIoU@3', 'bIoU@5', 'bIoU@8', 'bIoU@12',
                'bIoU'):
        m = re.search(re.escape(key) + r': (nan|[\d.]+)', line[-1])
        assert m, (key, line[-1])
        values[key] = float(m.group(1))
    print({k: v for k, v in values.items()})
    for key, v in values.items():
        assert 0.0 <= v <= 100.0, (key, v)
    # the metric's mean is the mean of its widths (2-decimal rounding)
    widths = [values[f'bIoU@{n}'] for n in (3, 5, 8, 12)]
    assert abs(values['bIoU'] - sum(widths) / 4) <= 0.01

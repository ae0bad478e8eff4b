"""End to end: the R50 ADE20K MaskFormer + FaPN config trains with
``mim train mmseg`` on a generated ADE20K-format dataset (read by mmseg's
ADE20KDataset) and ``mim test mmseg`` evaluates the checkpoint (IoUMetric).

Only what CPU needs changes, in a child config written to a temp dir: no
pretrained backbone, 64x64 crops of 67x91 images, 2 iterations, 0 workers.
"""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch

from mmfapn.datasets import write_toy_ade

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
CONFIG = osp.join(REPO, 'configs', 'seg', 'maskformer',
                  'maskformer_r50_fapn_8xb2-160k_ade20k-512x512.py')
ITERS = 2

CHILD = '''_base_ = [{config!r}]
data_root = {data_root!r}
crop_size = (64, 64)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(init_cfg=None))  # nothing can be downloaded
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(91, 67), ratio_range=(0.8, 1.2),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(91, 67), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
test_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
# evaluation is `mim test`'s job here
val_dataloader = None
val_cfg = None
val_evaluator = None
train_cfg = dict(max_iters={iters})
param_scheduler = [
    dict(type='PolyLR', eta_min=0, power=0.9, begin=0, end={iters},
         by_epoch=False)
]
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(interval={iters}, save_optimizer=False,
                    save_param_scheduler=False))
randomness = dict(seed=0)
'''


def _mim(args, cwd):
    """Run the venv's ``mim`` (PATH with the venv's bin first, so that the
    training script runs with the venv's python)."""
    bin_dir = osp.dirname(sys.executable)
    env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ['PATH'])
    proc = subprocess.run([osp.join(bin_dir, 'mim')] + args, cwd=cwd,
                          env=env, capture_output=True, text=True,
                          timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    return out


@pytest.mark.slow
def test_r50_ade20k_mim_train_then_mim_test_reports_miou(tmp_path):
    from mmengine.runner import CheckpointLoader

    from mmfapn.engine import install_runtime_hardening
    install_runtime_hardening()  # this process loads the Runner checkpoint
    data = write_toy_ade(str(tmp_path / 'ade'), num_train=4, num_val=2,
                         height=67, width=91, seed=0)
    cfg = tmp_path / 'maskformer_r50_fapn_toy.py'
    cfg.write_text(CHILD.format(config=CONFIG, data_root=data['root'],
                                iters=ITERS))
    work = tmp_path / 'work'

    log = _mim(['train', 'mmseg', str(cfg), '--work-dir', str(work)],
               str(tmp_path))
    losses = [float(v) for v in re.findall(
        r'Iter\(train\) \[\d+/%d\].*?\sloss: ([0-9.]+)' % ITERS, log)]
    assert len(losses) == ITERS, log[-3000:]
    assert all(0 < v < float('inf') for v in losses)
    ckpt = work / f'iter_{ITERS}.pth'
    assert ckpt.is_file()
    state = CheckpointLoader.load_checkpoint(
        str(ckpt), map_location='cpu')['state_dict']
    # the trained model has FaPN's decoder; its zero-initialised offset/mask
    # convs moved
    offsets = [v for k, v in state.items() if k.startswith(
        'decode_head.pixel_decoder.align_modules.') and
        k.endswith('dcn.conv_offset.weight')]
    assert len(offsets) == 3
    assert all(torch.count_nonzero(w) > 0 for w in offsets)

    out = _mim(['test', 'mmseg', str(cfg), '--checkpoint', str(ckpt),
                '--work-dir', str(tmp_path / 'test')], str(tmp_path))
    found = re.search(r'Iter\(test\) \[2/2\].*?aAcc: ([0-9.]+)\s+'
                      r'mIoU: ([0-9.]+)\s+mAcc: ([0-9.]+)', out)
    assert found, out[-3000:]
    a_acc, miou, m_acc = (float(v) for v in found.groups())
    assert 0 <= miou <= 100 and 0 <= a_acc <= 100 and 0 <= m_acc <= 100
    # per-class table of mmseg's IoUMetric over ADE20K's 150 classes
    assert re.search(r'\|\s+wall\s+\|', out) and re.search(
        r'\|\s+flag\s+\|', out)
    print(f'toy ADE20K, R50 MaskFormer + FaPN after {ITERS} iterations: '
          f'aAcc {a_acc:.2f}, mIoU {miou:.2f}, mAcc {m_acc:.2f} '
          f'(train losses {losses})')

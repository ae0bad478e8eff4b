"""Shared fixtures.  tests/ is deliberately not a package (the mmseg wheel
installs a top-level ``tests`` package); pytest runs with
``--import-mode=importlib``, so shared helpers live here as fixtures."""
import os

import pytest
import torch

# mmfapn's runner keeps glibc's freed memory for reuse on CPU, a
# process-wide setting that cannot be undone: the suite's runners leave
# malloc alone; tests/engine/test_cpu_malloc_runner.py checks the default
# in fresh interpreters.
os.environ.setdefault('MMFAPN_CPU_MALLOC', 'default')


def _bilinear_zero_pad(x: torch.Tensor, py: torch.Tensor,
                       px: torch.Tensor) -> torch.Tensor:
    """Sample x (N, C, H, W) at float positions py, px (N, Ho, Wo), with
    zeros outside the image (each of the 4 corners checked on its own)."""
    n, c, h, w = x.shape
    y0, x0 = torch.floor(py), torch.floor(px)
    ly, lx = py - y0, px - x0
    out = x.new_zeros(n, c, *py.shape[1:])
    batch = torch.arange(n).view(n, 1, 1).expand_as(py)
    for dy, wy in ((0, 1 - ly), (1, ly)):
        for dx, wx in ((0, 1 - lx), (1, lx)):
            yy, xx = (y0 + dy).long(), (x0 + dx).long()
            valid = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
            v = x[batch, :, yy.clamp(0, h - 1), xx.clamp(0, w - 1)]
            v = v.permute(0, 3, 1, 2)  # N, C, Ho, Wo
            out += v * (wy * wx * valid).unsqueeze(1)
    return out


def reference_modulated_deform_conv2d(x, offset, mask, weight, bias,
                                      stride=1, padding=0, dilation=1,
                                      deform_groups=1):
    """Direct definition of DCNv2 written from the paper's formula, with the
    offset layout spelled out: for group g and tap k (row-major), channel
    2*(g*K + k) is dy and 2*(g*K + k)+1 is dx; mask channel g*K + k."""
    n, c, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    ho, wo = offset.shape[-2:]
    taps = kh * kw
    cpg = c // deform_groups
    base_y = (torch.arange(ho, dtype=x.dtype) * stride - padding).view(
        1, ho, 1)
    base_x = (torch.arange(wo, dtype=x.dtype) * stride - padding).view(
        1, 1, wo)
    cols = x.new_zeros(n, c, taps, ho, wo)
    for g in range(deform_groups):
        for k in range(taps):
            i, j = divmod(k, kw)
            ch = 2 * (g * taps + k)
            py = base_y + i * dilation + offset[:, ch]
            px = base_x + j * dilation + offset[:, ch + 1]
            m = mask[:, g * taps + k].unsqueeze(1)
            cols[:, g * cpg:(g + 1) * cpg, k] = _bilinear_zero_pad(
                x[:, g * cpg:(g + 1) * cpg], py, px) * m
    out = torch.einsum('nckhw,ock->nohw', cols,
                       weight.reshape(c_out, c, taps))
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out


@pytest.fixture
def mdcn_reference():
    return reference_modulated_deform_conv2d


@pytest.fixture
def mmdet_scope():
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    from mmdet.registry import MODELS
    return MODELS


@pytest.fixture
def mmseg_scope():
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')
    from mmseg.registry import MODELS
    return MODELS


def num_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture
def count_params():
    return num_params


def relative_error(outputs, references) -> float:
    """Norm-wise relative error ``|out - ref| / |ref|`` over paired lists
    of tensors (outputs in any dtype, compared in float32)."""
    num = sum((o.detach().float() - r.float()).pow(2).sum()
              for o, r in zip(outputs, references))
    den = sum(r.float().pow(2).sum() for r in references)
    return float((num / den).sqrt())


@pytest.fixture
def rel_error():
    return relative_error


DCN_TENSORS = ('output', 'input', 'offset', 'mask', 'weight', 'bias')


def assert_within_scale(got, ref, rel, names=DCN_TENSORS):
    """Each tensor of ``got`` within ``rel`` of the largest magnitude of
    its reference (same shape and dtype), named in the message."""
    for name, a, b in zip(names, got, ref):
        assert a.shape == b.shape and a.dtype == b.dtype, name
        err = (a.double() - b.double()).abs().max().item()
        scale = b.double().abs().max().item()
        assert err <= rel * scale, (
            f'{name}: max difference {err:.3g}, largest value {scale:.3g}')


@pytest.fixture
def within_scale():
    return assert_within_scale


# A small FaPN semantic-segmentation config on a toy Cityscapes, for the
# Runner / tools tests.  Written to a temp dir; inherits mmseg's Semantic
# FPN config and the shared mmfapn fragment, changing only what the tiny
# run needs.  SyncBN is kept from the stock config on purpose: mmengine
# reverts it in one process, DeviceAgnosticDistributedDataParallel on CPU.
_TINY_FAPN_SEG = '''
_base_ = [
    'mmseg::sem_fpn/fpn_r50_4xb2-80k_cityscapes-512x1024.py',
    {fragment!r},
]
crop_size = (64, 128)
model = dict(
    data_preprocessor=dict(size=crop_size),
    pretrained=None,
    backbone=dict(depth=18, init_cfg=None),
    neck=dict(type='FaPN', in_channels=[64, 128, 256, 512], out_channels=32),
    decode_head=dict(in_channels=[32] * 4, channels=16, dropout_ratio=0.0))
# no random augmentation: keeps these tool tests cheap and independent of
# the exact-resume machinery, which tests/engine/test_resume_exact.py covers
pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
            dict(type='PackSegInputs')]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root={data_root!r}, pipeline=pipeline))
test_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(data_root={data_root!r}, pipeline=pipeline))
val_dataloader = None
val_cfg = None
val_evaluator = None
train_cfg = dict(max_iters=4, val_interval=1000)
default_hooks = dict(checkpoint=dict(interval=1), logger=dict(interval=1))
log_processor = dict(window_size=1)  # log each iteration's own loss
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0)
'''


@pytest.fixture(scope='session')
def tiny_fapn_seg_config(tmp_path_factory) -> str:
    """Path of the tiny FaPN config (ResNet-18, FaPN 32 channels, Semantic
    FPN head; 4 iterations of batch 2 on 64x128 toy Cityscapes images)."""
    from pathlib import Path

    from mmfapn.datasets.toy_cityscapes import write_toy_cityscapes
    root = tmp_path_factory.mktemp('tiny_fapn_seg')
    write_toy_cityscapes(str(root / 'data'), num_train=4, num_val=2)
    fragment = Path(__file__).resolve().parents[1] / 'configs' / '_base_' / \
        'mmfapn.py'
    cfg = root / 'tiny_fapn_seg.py'
    cfg.write_text(
        _TINY_FAPN_SEG.format(
            fragment=str(fragment), data_root=str(root / 'data')))
    return str(cfg)


@pytest.fixture(scope='session')
def demo_run(tmp_path_factory) -> dict:
    """One tiny ``tools/demo.py`` run (subprocess; 2 iterations of batch 2
    per model on 4 + 2 generated 128x256 images, 2 figure rows), shared by
    the demo, vis_alignment and compare_predictions tests: its
    ``work_dir``, ``report`` (report.json) and ``stdout``."""
    import json
    import subprocess
    import sys
    from pathlib import Path
    repo = Path(__file__).resolve().parents[1]
    work = tmp_path_factory.mktemp('demo')
    cmd = [
        sys.executable,
        str(repo / 'tools' / 'demo.py'), '--iters', '2', '--batch-size', '2',
        '--num-train', '4', '--num-val', '2', '--num-figures', '2',
        '--log-interval', '1', '--work-dir',
        str(work)
    ]
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((work / 'report.json').read_text())
    return dict(work_dir=str(work), report=report, stdout=proc.stdout)

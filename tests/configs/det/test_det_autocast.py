"""Whole mmdet FaPN models under CPU bfloat16 autocast: the training loss
and its backward run, losses and every gradient are finite, and the FaPN
neck's outputs stay within 3% (norm-wise relative error) of float32.

The forward runs in ``CPUAmpOptimWrapper.optim_context`` (what
``tools/train.py --amp`` uses without CUDA): ``torch.autocast('cpu',
dtype=torch.bfloat16)`` plus float32 for mmcv's CPU ``nms`` and
``roi_align``, which have no bfloat16 path (``mmcv_ops_in_float32``; the
test below shows that plain autocast fails there, in stock code).
ResNet-18 and fewer RoIs, as in test_det_configs.py (CPU budget); the neck
and heads are the config's.  CUDA float16 (``AmpOptimWrapper``) is
untested here (``make gpu-check``).  Offsets are made non-zero so that the
deformable convs sample off the grid.
"""
import pytest
import torch

from mmfapn.engine.cpu_amp import CPUAmpOptimWrapper

CONFIGS = [
    'mask_rcnn/mask-rcnn_r50_fapn_1x_coco.py',
    'point_rend/point-rend_r50-caffe_fapn_ms-1x_coco.py',
]


def _randomise_offsets(model):
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if 'conv_offset' in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)


@pytest.mark.slow
@pytest.mark.parametrize('config', CONFIGS)
def test_loss_backward_under_bfloat16_autocast(config, det_config, det_model,
                                               det_toy_batch, rel_error):
    cfg = det_config(config)
    cfg.model.backbone.depth = 18
    cfg.model.neck.in_channels = [64, 128, 256, 512]
    if 'rcnn' in cfg.model.train_cfg:
        cfg.model.train_cfg.rcnn.sampler.num = 64
    torch.manual_seed(0)
    model = det_model(cfg.model)
    _randomise_offsets(model)
    model.train()
    data = model.data_preprocessor(det_toy_batch('instance'), training=True)

    with torch.no_grad():
        ref = model.neck(model.backbone(data['inputs']))
    seen = {}
    model.neck.register_forward_hook(
        lambda m, a, out: seen.setdefault('neck', out))
    wrapper = CPUAmpOptimWrapper(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.01))
    with wrapper.optim_context(model):
        losses = model(**data, mode='loss')
    loss, log_vars = model.parse_losses(losses)
    assert torch.isfinite(loss) and loss.item() > 0
    assert {'loss_cls', 'loss_bbox', 'loss_mask'} <= set(log_vars)
    loss.backward()

    out = seen['neck']
    assert all(o.dtype == torch.bfloat16 for o in out)
    rel = rel_error(out, ref)
    assert rel < 0.03, f'neck relative error {rel:.2e}'
    grads = {n: p.grad for n, p in model.named_parameters()
             if p.grad is not None}
    assert all(torch.isfinite(g).all() for g in grads.values())
    offsets = [g for n, g in grads.items() if 'neck' in n and
               'conv_offset' in n]
    assert len(offsets) == 6 and all(g.abs().sum() > 0 for g in offsets)

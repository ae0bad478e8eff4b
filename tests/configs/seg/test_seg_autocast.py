"""PointRend R50 FaPN (semantic, the paper's Table 1 model) under CPU
bfloat16 autocast: the training loss and its backward run, losses and
gradients are finite, and the FaPN neck's outputs stay within 3%
(norm-wise relative error) of float32.  Offsets are made non-zero so that
the deformable convs sample off the grid."""
import pytest
import torch

CONFIG = 'point_rend/pointrend_r50_fapn_8xb4-65k_cityscapes-512x1024.py'


@pytest.mark.slow
def test_pointrend_fapn_under_bfloat16_autocast(seg_config, seg_model,
                                               seg_batch, seg_num_classes,
                                               rel_error):
    torch.manual_seed(0)
    model = seg_model(seg_config(CONFIG), odd_sizes=True)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if 'conv_offset' in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    model.backbone.requires_grad_(False)  # stock code; CPU time
    model.train()
    data = model.data_preprocessor(
        seg_batch([(45, 61), (39, 58)], seg_num_classes(model)),
        training=True)
    with torch.no_grad():
        ref = model.neck(model.backbone(data['inputs']))
    seen = {}
    model.neck.register_forward_hook(
        lambda m, a, out: seen.setdefault('neck', out))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = model.loss(**data)
    loss, log_vars = model.parse_losses(losses)
    assert torch.isfinite(loss) and loss.item() > 0
    assert {'decode_0.loss_ce', 'decode_1.pointloss_ce'} <= set(log_vars)
    loss.backward()
    out = seen['neck']
    assert all(o.dtype == torch.bfloat16 for o in out)
    rel = rel_error(out, ref)
    assert rel < 0.03, f'neck relative error {rel:.2e}'
    grads = {n: p.grad for n, p in model.named_parameters()
             if p.grad is not None}
    assert all(torch.isfinite(g).all() for g in grads.values())
    offsets = [g for n, g in grads.items() if 'conv_offset' in n]
    assert len(offsets) == 6 and all(g.abs().sum() > 0 for g in offsets)

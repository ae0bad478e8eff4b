"""mmcv's CPU nms / roi_align in float32 inside CPU autocast."""
import sys

import pytest
import torch
from mmcv.ops import RoIAlign, batched_nms

from mmfapn.engine.mmcv_cpu_autocast import mmcv_ops_in_float32

BF16 = torch.bfloat16


def _boxes(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 50
    wh = torch.rand(n, 2, generator=g) * 20 + 2
    boxes = torch.cat([xy, xy + wh], dim=1)
    scores = torch.rand(n, generator=g)
    return boxes, scores


def _roi_inputs():
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(2, 4, 16, 16, generator=g)
    rois = torch.tensor([[0., 1., 1., 9., 12.], [1., 3.5, 2., 15., 7.],
                         [0., 0., 0., 15., 15.]])
    return feats, rois


def test_stock_ops_fail_under_cpu_autocast():
    """What the context exists for: stock mmcv 2.1.0 under CPU autocast."""
    boxes, scores = _boxes()
    with torch.autocast('cpu', dtype=BF16), pytest.raises(RuntimeError):
        batched_nms(boxes.to(BF16), scores, torch.zeros(40).long(),
                    dict(type='nms', iou_threshold=0.5))
    feats, rois = _roi_inputs()
    with torch.autocast('cpu', dtype=BF16), pytest.raises(RuntimeError):
        RoIAlign(3, 0.5)(feats.to(BF16), rois.to(BF16))


def test_nms_mixed_dtypes_equals_float32_nms():
    boxes, scores = _boxes()
    boxes16 = boxes.to(BF16)
    cfg = dict(type='nms', iou_threshold=0.5)
    idxs = torch.zeros(40).long()
    ref_dets, ref_keep = batched_nms(boxes16.float(), scores, idxs, cfg)
    with torch.autocast('cpu', dtype=BF16), mmcv_ops_in_float32():
        dets, keep = batched_nms(boxes16, scores, idxs, cfg)
    assert torch.equal(keep, ref_keep)
    assert dets.dtype == torch.float32 and torch.equal(dets, ref_dets)


def test_roi_align_bfloat16_equals_float32_then_rounded():
    feats, rois = _roi_inputs()
    layer = RoIAlign(3, 0.5, sampling_ratio=2)
    feats16 = feats.to(BF16).requires_grad_()
    ref = layer(feats16.detach().float(), rois)
    with torch.autocast('cpu', dtype=BF16), mmcv_ops_in_float32():
        out = layer(feats16, rois.to(BF16))
    assert out.dtype == BF16
    # float32 RoIAlign on the same (bf16-rounded) features, then rounded:
    # bf16 rois round 3.5 exactly, so the positions are the same.
    assert torch.equal(out, ref.to(BF16))
    out.float().sum().backward()
    assert feats16.grad.dtype == BF16
    assert torch.isfinite(feats16.grad.float()).all()
    assert feats16.grad.float().abs().sum() > 0


def test_untouched_outside_autocast_and_restored_after_error():
    nms_module = sys.modules['mmcv.ops.nms']
    roi_module = sys.modules['mmcv.ops.roi_align']
    before = (nms_module.nms, roi_module.roi_align)
    feats, rois = _roi_inputs()
    with pytest.raises(ValueError, match='boom'), mmcv_ops_in_float32():
        assert nms_module.nms is not before[0]
        # autocast off: a bfloat16 call is the stock call (and fails)
        with pytest.raises(RuntimeError):
            RoIAlign(3, 0.5)(feats.to(BF16), rois.to(BF16))
        with mmcv_ops_in_float32():  # nested: not wrapped twice
            assert nms_module.nms._mmfapn_wraps is before[0]
        raise ValueError('boom')
    assert (nms_module.nms, roi_module.roi_align) == before

"""The small generated batch of the FaPN coverage check, and the check of
what ``predict`` returns.

Two synthetic scenes (:func:`mmfapn.datasets.render_scene`), one square
and one of odd size, as the toolboxes' loaders hand them to a data
preprocessor: uint8 BGR images and data samples with ground truth (boxes,
labels, bitmap masks and a semantic map for mmdet, plus jittered-box
proposals for two-stage detectors without an RPN; a semantic map for
mmseg).  mmseg's
data preprocessor requires equal sizes at test time, so its predict batch
is two odd-sized images.
"""
from typing import Any, Dict, List, Tuple

import numpy as np
import torch
from torch import nn

# (H, W) of the images; BATCH_SHAPE: the padded batch (size divisor 32)
# (96 px: C5 is 3x4, large enough for the 3x3 deformable convs of the
# backbones with DCN, whose CPU kernel rejects maps smaller than the kernel)
TRAIN_SIZES = ((96, 96), (93, 125))
SEG_TEST_SIZES = ((93, 125), (93, 125))
BATCH_SHAPE = (96, 128)
NUM_PROPOSALS = 16


def _int_attrs(model: nn.Module, attr: str) -> List[Tuple[str, int]]:
    return [(name, getattr(m, attr)) for name, m in model.named_modules()
            if isinstance(getattr(m, attr, None), int)
            and not isinstance(getattr(m, attr), bool)]


def det_class_counts(model: nn.Module) -> Tuple[int, int, int]:
    """(classes every head accepts as a label, the largest label any head
    may predict + 1, stuff classes) of an mmdet model."""
    things = [v for _, v in _int_attrs(model, 'num_things_classes')]
    stuff = [v for _, v in _int_attrs(model, 'num_stuff_classes')]
    # RPNs are class-agnostic and semantic heads count stuff classes too:
    # neither bounds the instance labels
    heads = [v for name, v in _int_attrs(model, 'num_classes')
             if 'rpn' not in name and 'semantic' not in name
             and 'seg_head' not in name and v > 0]
    if things:
        label_bound = things[0]
    else:
        label_bound = min(heads) if heads else 1
    largest = max(heads + things + [label_bound])
    return label_bound, largest, stuff[0] if stuff else 0


def seg_num_classes(model: nn.Module) -> int:
    heads = model.decode_head
    head = heads[-1] if isinstance(heads, nn.ModuleList) else heads
    return int(head.num_classes)


def make_batch(toolbox: str, model: nn.Module, train: bool,
               seed: int = 0) -> Dict[str, list]:
    """Raw images and data samples for ``model.data_preprocessor``."""
    from mmengine.structures import PixelData

    from mmfapn.datasets import render_scene
    sizes = TRAIN_SIZES if train or toolbox == 'mmdet' else SEG_TEST_SIZES
    if toolbox == 'mmseg':
        from mmseg.structures import SegDataSample
        num_classes = seg_num_classes(model)
    else:
        num_classes, _, num_stuff = det_class_counts(model)
    rng = np.random.default_rng(seed)
    inputs, samples = [], []
    for i, (h, w) in enumerate(sizes):
        scene = render_scene(h, w, num_classes=max(num_classes, 1),
                             seed=seed + i)
        img = np.ascontiguousarray(scene.image[..., ::-1])  # RGB -> BGR
        inputs.append(torch.from_numpy(img).permute(2, 0, 1).contiguous())
        meta = dict(img_path=f'synthetic_{seed + i}.png', img_id=seed + i,
                    ori_shape=(h, w), img_shape=(h, w), pad_shape=(h, w),
                    scale_factor=(1.0, 1.0), flip=False, flip_direction=None)
        semantic = torch.from_numpy(scene.semantic.astype(np.int64))[None]
        if toolbox == 'mmseg':
            sample = SegDataSample(metainfo=dict(meta,
                                                 reduce_zero_label=False))
            sample.gt_sem_seg = PixelData(data=semantic)
            samples.append(sample)
            continue
        sample = scene_det_sample(scene, meta, semantic, num_classes,
                                  num_stuff)
        if getattr(model, 'with_rpn', None) is False:
            # a two-stage detector without RPN (Fast R-CNN) reads its
            # proposals from the data sample; any other two-stage detector
            # would use them instead of its RPN at predict time
            sample.proposals = _proposals(sample.gt_instances.bboxes, h, w,
                                          rng)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def scene_det_sample(scene, meta: dict, semantic: torch.Tensor,
                     num_classes: int, num_stuff: int) -> Any:
    """An mmdet ``DetDataSample`` of a synthetic scene: its instances as
    boxes, labels (modulo ``num_classes``) and bitmap masks, no ignored
    instances, and a panoptic-style semantic map ``semantic`` (1, H, W) in
    which things keep their label and the background becomes the first
    stuff class (ignored, 255, without stuff classes)."""
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData, PixelData
    h, w = semantic.shape[-2:]
    sample = DetDataSample(metainfo=meta)
    masks = [inst.mask for inst in scene.instances]
    boxes = []
    for m in masks:
        ys, xs = np.nonzero(m)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    labels = torch.tensor([inst.label for inst in scene.instances],
                          dtype=torch.long)
    sample.gt_instances = InstanceData(
        bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        labels=labels % max(num_classes, 1),
        masks=BitmapMasks(
            np.stack(masks).astype(np.uint8) if masks else np.zeros(
                (0, h, w), np.uint8), h, w))
    sample.ignored_instances = InstanceData(
        bboxes=torch.zeros(0, 4), labels=torch.zeros(0).long())
    sem = semantic.clone()
    sem[sem == scene.background] = num_classes if num_stuff else 255
    sample.gt_sem_seg = PixelData(sem_seg=sem)
    return sample


def _proposals(boxes: torch.Tensor, h: int, w: int, rng) -> Any:
    """Jittered ground-truth boxes plus random ones (Fast R-CNN configs
    read precomputed proposals from the data sample)."""
    from mmengine.structures import InstanceData
    out = []
    for k in range(NUM_PROPOSALS):
        if len(boxes) and k < 2 * len(boxes):
            x1, y1, x2, y2 = boxes[k % len(boxes)].tolist()
            jitter = rng.uniform(-3, 3, size=4)
            box = [x1 + jitter[0], y1 + jitter[1], x2 + jitter[2],
                   y2 + jitter[3]]
        else:
            x1, y1 = rng.uniform(0, w - 8), rng.uniform(0, h - 8)
            box = [x1, y1, x1 + rng.uniform(4, w / 2),
                   y1 + rng.uniform(4, h / 2)]
        x1, y1, x2, y2 = box
        x1, x2 = np.clip([x1, max(x2, x1 + 2)], 0, w)
        y1, y2 = np.clip([y1, max(y2, y1 + 2)], 0, h)
        out.append([x1, y1, x2, y2])
    return InstanceData(
        bboxes=torch.tensor(out, dtype=torch.float32),
        scores=torch.linspace(1.0, 0.1, NUM_PROPOSALS))


def check_results(toolbox: str, model: nn.Module, results: list,
                  batch: Dict[str, list]) -> None:
    """Raise one line naming what is malformed in ``predict``'s output."""
    samples = batch['data_samples']
    if not isinstance(results, (list, tuple)) or len(results) != len(
            samples):
        raise AssertionError(f'predict returned {type(results).__name__} '
                             f'of length {len(results)} for '
                             f'{len(samples)} images')
    if toolbox == 'mmseg':
        num_classes = seg_num_classes(model)
        for res, gt in zip(results, samples):
            h, w = gt.ori_shape
            pred = res.pred_sem_seg.data
            if tuple(pred.shape) != (1, h, w):
                raise AssertionError(f'pred_sem_seg {tuple(pred.shape)}, '
                                     f'expected (1, {h}, {w})')
            bound = max(num_classes, 2)  # a 1-channel head predicts 0/1
            if pred.min() < 0 or pred.max() >= bound:
                raise AssertionError(f'pred_sem_seg labels outside '
                                     f'[0, {bound})')
            logits = res.seg_logits.data
            if tuple(logits.shape[1:]) != (h, w) or \
                    not torch.isfinite(logits).all():
                raise AssertionError(f'seg_logits {tuple(logits.shape)} '
                                     'malformed or not finite')
        return
    _, largest, _ = det_class_counts(model)
    for res, gt in zip(results, samples):
        h, w = gt.ori_shape
        found = False
        if 'pred_panoptic_seg' in res:
            found = True
            pan = res.pred_panoptic_seg.sem_seg
            if tuple(pan.shape) != (1, h, w):
                raise AssertionError(f'pred_panoptic_seg {tuple(pan.shape)}'
                                     f', expected (1, {h}, {w})')
        if 'pred_instances' in res:
            found = True
            _check_instances(res.pred_instances, h, w, largest)
        if not found:
            raise AssertionError('predict returned no pred_instances or '
                                 f'pred_panoptic_seg (keys: {res.keys()})')


def _check_instances(pred, h: int, w: int, num_classes: int) -> None:
    n = len(pred)
    if 'bboxes' in pred:
        boxes = pred.bboxes
        if tuple(boxes.shape) != (n, 4) or not torch.isfinite(boxes).all():
            raise AssertionError(f'bboxes {tuple(boxes.shape)} for {n} '
                                 'detections, or not finite')
        if n and not (boxes[:, :2] <= boxes[:, 2:] + 1e-3).all():
            raise AssertionError('a box with x2 < x1 or y2 < y1')
    scores = pred.scores
    if tuple(scores.shape) != (n, ) or not torch.isfinite(scores).all():
        raise AssertionError(f'scores {tuple(scores.shape)} for {n} '
                             'detections, or not finite')
    labels = pred.labels
    if tuple(labels.shape) != (n, ) or (n and (
            labels.min() < 0 or labels.max() >= num_classes)):
        raise AssertionError(f'labels {tuple(labels.shape)} or outside '
                             f'[0, {num_classes})')
    if 'masks' in pred:
        masks = pred.masks
        if tuple(masks.shape) != (n, h, w):
            raise AssertionError(f'masks {tuple(masks.shape)}, expected '
                                 f'({n}, {h}, {w})')

"""A model's prediction drawn over its input image.

Semantic results (mmseg, mmdet panoptic) are coloured in the dataset
palette; instance results (mmdet) get their masks blended and boxes drawn.
The prediction comes from :func:`mmfapn.apis.predict`.
"""
from typing import TYPE_CHECKING

import cv2
import numpy as np
from torch import nn

from .drawing import colorize, make_palette, resize_to

if TYPE_CHECKING:  # mmfapn.apis.inference imports this package's drawing
    from mmfapn.apis.inference import Prediction


def render_prediction(pred: 'Prediction',
                      model: nn.Module,
                      score_thr: float = 0.3,
                      opacity: float = 0.5) -> np.ndarray:
    """The prediction drawn over the image (original size), RGB uint8:
    semantic classes (mmseg, mmdet panoptic) in the dataset palette, or
    instances (masks and boxes with score >= ``score_thr``)."""
    image = pred.image
    meta = getattr(model, 'dataset_meta', None) or {}
    result = pred.result
    if 'pred_sem_seg' in result:
        labels = result.pred_sem_seg.data[0].cpu().numpy()
        palette = make_palette(int(labels.max()) + 1, meta.get('palette'))
        return _blend(image, colorize(labels, palette), opacity)
    if 'pred_panoptic_seg' in result:
        ids = result.pred_panoptic_seg.sem_seg[0].cpu().numpy()
        uniq, inv = np.unique(ids, return_inverse=True)
        palette = make_palette(len(uniq))
        return _blend(image, palette[inv.reshape(ids.shape)], opacity)
    out = image.copy()
    inst = result.pred_instances
    keep = (inst.scores >= score_thr).cpu().numpy()
    labels = inst.labels.cpu().numpy()[keep]
    palette = make_palette(
        max(len(meta.get('classes', ())), int(labels.max(initial=0)) + 1),
        meta.get('palette'))
    if 'masks' in inst:
        masks = inst.masks.cpu().numpy()[keep].astype(bool)
        for m, lab in zip(masks, labels):
            out[m] = (out[m] * (1 - opacity) +
                      palette[lab] * opacity).astype(np.uint8)
    for box, lab in zip(inst.bboxes.cpu().numpy()[keep], labels):
        x1, y1, x2, y2 = [int(round(v)) for v in box]
        cv2.rectangle(out, (x1, y1), (x2, y2),
                      tuple(int(c) for c in palette[lab]), 1)
    return out


def _blend(image: np.ndarray, overlay: np.ndarray,
           opacity: float) -> np.ndarray:
    if overlay.shape[:2] != image.shape[:2]:
        overlay = resize_to(overlay, *image.shape[:2], nearest=True)
    return (image * (1 - opacity) + overlay * opacity).astype(np.uint8)

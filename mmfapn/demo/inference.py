"""Load an mmdet or mmseg model from a config and checkpoint and run it on
one image, for the analysis tools and the demo.

The toolbox is picked from the config's ``default_scope`` (see
:func:`mmfapn.engine.load_config`); loading goes through mmseg's
``init_model`` / mmdet's ``init_detector`` (the toolboxes' own inference
path, test pipeline included) and mmengine's checkpoint loader, which
``import mmfapn`` makes load Runner checkpoints with
``weights_only=True``.  Nothing is downloaded: backbone ``init_cfg`` and
``pretrained`` are cleared before the model is built.
"""
import copy
import os
import os.path as osp
from dataclasses import dataclass
from typing import Optional, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config
from torch import nn

from .drawing import check_rgb, colorize, make_palette


def load_model(config: Union[str, Config],
               checkpoint: Optional[str] = None,
               device: str = 'cpu') -> nn.Module:
    """Build the config's model, load ``checkpoint`` (optional) and put it
    in eval mode on ``device``; SyncBN is reverted to BN.

    The returned model has ``model.cfg`` (the config) and
    ``model.mmfapn_scope`` (``'mmdet'`` or ``'mmseg'``).

    Raises:
        FileNotFoundError: the config or the checkpoint does not exist.
        ValueError: the config is neither an mmdet nor an mmseg config.
    """
    from mmengine.model import revert_sync_batchnorm

    from mmfapn.engine import load_config
    if isinstance(config, (str, os.PathLike)):
        cfg = load_config(os.fspath(config))
    elif isinstance(config, Config):
        cfg = copy.deepcopy(config)
    else:
        raise TypeError(f'config must be a path or an mmengine Config, got '
                        f'{type(config).__name__}')
    if checkpoint is not None and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint file not found: {checkpoint!r}')
    scope = cfg.get('default_scope')
    if cfg.model.get('backbone') is not None:
        cfg.model.backbone.init_cfg = None
    if 'pretrained' in cfg.model:
        cfg.model.pretrained = None
    if scope == 'mmseg':
        from mmseg.apis import init_model
        model = init_model(cfg, checkpoint, device=device)
    elif scope == 'mmdet':
        from mmdet.apis import init_detector
        model = init_detector(cfg, checkpoint, device=device)
    else:
        raise ValueError(f'default_scope={scope!r}: expected an mmdet or '
                         'mmseg config')
    model = revert_sync_batchnorm(model)
    model.eval()
    model.cfg = cfg
    model.mmfapn_scope = scope
    return model


@dataclass
class Prediction:
    """One image's result.

    Attributes:
        image (np.ndarray): (H, W, 3) RGB input as given (original size).
        result: the toolbox's ``SegDataSample`` / ``DetDataSample``.
        input_shape (tuple): (H_in, W_in) of the tensor the backbone saw
            (after the test pipeline's resize and the data preprocessor's
            padding).
        img_shape (tuple): (h, w) of the resized image inside that tensor
            (the rest is padding).
    """
    image: np.ndarray
    result: object
    input_shape: Tuple[int, int]
    img_shape: Tuple[int, int]

    def valid_size(self, size: Tuple[int, int]) -> Tuple[int, int]:
        """The part (rows, cols) of a feature map of ``size`` that covers
        the image rather than padding."""
        h, w = size
        rows = int(np.ceil(h * self.img_shape[0] / self.input_shape[0]))
        cols = int(np.ceil(w * self.img_shape[1] / self.input_shape[1]))
        return max(1, min(rows, h)), max(1, min(cols, w))


def predict(model: nn.Module, image: np.ndarray) -> Prediction:
    """Run ``model`` (from :func:`load_model`) on one RGB uint8 image
    through the config's test pipeline."""
    image = check_rgb(image)
    bgr = np.ascontiguousarray(image[..., ::-1])  # the pipelines load BGR
    shapes = []

    def grab(module, args):
        if not shapes:
            shapes.append(tuple(args[0].shape[-2:]))

    backbone = getattr(model, 'backbone', None)
    if backbone is None:
        raise ValueError(f'{type(model).__name__} has no backbone')
    handle = backbone.register_forward_pre_hook(grab)
    try:
        with torch.no_grad():
            if model.mmfapn_scope == 'mmseg':
                from mmseg.apis import inference_model
                result = inference_model(model, bgr)
            else:
                from mmdet.apis import inference_detector
                result = inference_detector(model, bgr)
    finally:
        handle.remove()
    img_shape = tuple(result.metainfo.get('img_shape', shapes[0]))[:2]
    return Prediction(image, result, shapes[0], img_shape)


def render_prediction(pred: Prediction,
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
    import cv2
    for box, lab in zip(inst.bboxes.cpu().numpy()[keep], labels):
        x1, y1, x2, y2 = [int(round(v)) for v in box]
        cv2.rectangle(out, (x1, y1), (x2, y2),
                      tuple(int(c) for c in palette[lab]), 1)
    return out


def _blend(image: np.ndarray, overlay: np.ndarray,
           opacity: float) -> np.ndarray:
    if overlay.shape[:2] != image.shape[:2]:
        from .drawing import resize_to
        overlay = resize_to(overlay, *image.shape[:2], nearest=True)
    return (image * (1 - opacity) + overlay * opacity).astype(np.uint8)

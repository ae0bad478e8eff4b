"""Load an mmdet or mmseg model from a config and checkpoint and run it on
one image, for the analysis tools, the demo and the deployment tools.

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

from mmfapn.visualization.drawing import check_rgb


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

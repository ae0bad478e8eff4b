"""Build an mmdet or mmseg model from a config for inference, and run it on
one image: the one place where the demo, the analysis tools
(``benchmark.py``, ``vis_alignment.py``, ``compare_predictions.py``) and the
ONNX export turn a config into a model.

- :func:`read_config`: a config file of this repository or a user's, a
  stock config written ``mmdet::path`` / ``mmseg::path``, or an mmengine
  ``Config``; its ``default_scope`` must be one of
  :data:`mmfapn.registry.SCOPES`.
- :func:`build_model`: the config's model from the scope's ``MODELS``
  registry, pretrained initialisations switched off (:func:`drop_pretrained`:
  nothing is downloaded), optionally a checkpoint, SyncBN reverted to BN,
  on a device.  Train-ready: ``train_cfg`` is kept (``benchmark.py --mode
  train`` runs ``train_step`` on it).  :func:`build_model_cfg` does the
  building for a bare model config (the coverage sweep's).
- :func:`load_model`: for image inference through the toolboxes' own path,
  mmseg's ``init_model`` / mmdet's ``init_detector`` (test pipeline,
  ``dataset_meta`` from the checkpoint), in eval mode; :func:`predict` runs
  it on one RGB image.
"""
import copy
import importlib
import os
import os.path as osp
import tempfile
from dataclasses import dataclass
from typing import List, Optional, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config
from torch import nn

from mmfapn.registry import SCOPES
from mmfapn.utils.config_files import stock_configs_root
from mmfapn.visualization.drawing import check_rgb

#: Prefixes of a stock config of a toolbox, as in ``_base_`` lists.
STOCK_PREFIXES = tuple(f'{scope}::' for scope in SCOPES)

ConfigLike = Union[str, os.PathLike, Config]


def read_config(config: ConfigLike,
                cfg_options: Optional[dict] = None) -> Config:
    """A new :class:`~mmengine.config.Config` from a file path, a stock
    ``mmdet::``/``mmseg::`` path (read through a temporary child config,
    since ``Config.fromfile`` does not resolve those prefixes itself) or a
    ``Config`` (deep-copied, so the caller's stays as it was);
    ``cfg_options`` are merged in.

    Raises:
        FileNotFoundError: no such config file or stock config.
        ValueError: the ``default_scope`` is not mmdet's or mmseg's.
    """
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
    elif not isinstance(config, (str, os.PathLike)):
        raise TypeError(f'config must be a path or an mmengine Config, got '
                        f'{type(config).__name__}')
    elif os.fspath(config).startswith(STOCK_PREFIXES):
        cfg = _read_stock_config(os.fspath(config))
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
    else:
        from mmfapn.engine import load_config
        cfg = load_config(os.fspath(config), cfg_options)
    config_scope(cfg, str(config) if not isinstance(config, Config) else
                 cfg.filename or 'config')
    return cfg


def _read_stock_config(path: str) -> Config:
    scope, rel = path.split('::', 1)
    stock = osp.join(stock_configs_root(scope), rel)
    if not osp.isfile(stock):
        raise FileNotFoundError(f'stock config {path!r} not found (looked '
                                f'for {stock})')
    with tempfile.TemporaryDirectory() as tmp:
        child = osp.join(tmp, 'stock_child.py')
        with open(child, 'w') as f:
            f.write(f'_base_ = [{path!r}]\n')
        cfg = Config.fromfile(child)
    cfg.setdefault('default_scope', scope)
    return cfg


def config_scope(cfg: Config, source: str = 'config') -> str:
    """The config's ``default_scope``, checked to be one of
    :data:`~mmfapn.registry.SCOPES`; ``source`` names the config in the
    error."""
    scope = cfg.get('default_scope')
    if scope not in SCOPES:
        raise ValueError(
            f'{source} has default_scope={scope!r}; mmfapn builds mmdet and '
            f'mmseg models only (default_scope one of {SCOPES})')
    return scope


def _is_pretrained_init(cfg) -> bool:
    return isinstance(cfg, dict) and cfg.get('type') == 'Pretrained'


def drop_pretrained(node) -> List[str]:
    """Switch off every pretrained initialisation under ``node`` (a model
    config; nested dicts and lists), in place: ``pretrained=...`` and
    ``init_cfg=dict(type='Pretrained', ...)`` become None, an ``init_cfg``
    list loses its ``Pretrained`` entries.  Building the model then
    downloads nothing.  Returns what was dropped (checkpoints, in config
    order)."""
    dropped = []
    if isinstance(node, dict):  # ConfigDict included
        for key in list(node.keys()):
            value = node[key]
            if key == 'init_cfg' and _is_pretrained_init(value):
                dropped.append(str(value.get('checkpoint')))
                node[key] = None
            elif key == 'init_cfg' and isinstance(value, (list, tuple)):
                dropped += [str(v.get('checkpoint')) for v in value
                            if _is_pretrained_init(v)]
                node[key] = [v for v in value
                             if not _is_pretrained_init(v)] or None
            elif key == 'pretrained' and value:
                dropped.append(str(value))
                node[key] = None
            else:
                dropped += drop_pretrained(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            dropped += drop_pretrained(value)
    return dropped


def build_model_cfg(scope: str,
                    model_cfg: dict,
                    custom_imports: Optional[dict] = None,
                    init_weights: bool = True) -> nn.Module:
    """A model config (dict) built from ``scope``'s ``MODELS`` registry
    after importing ``custom_imports``, initialised as the Runner does
    (``init_weights()``, with its per-parameter log silenced; skipped with
    ``init_weights=False``), SyncBN reverted to BN.  Pretrained
    initialisations run as written: :func:`drop_pretrained` first to
    download nothing."""
    import logging

    from mmengine.config import ConfigDict
    from mmengine.logging import MMLogger
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope
    from mmengine.utils import import_modules_from_strings

    import mmfapn  # noqa: F401  (registers the plugin's modules)
    if custom_imports:
        import_modules_from_strings(**custom_imports)
    init_default_scope(scope)
    registry = importlib.import_module(f'{scope}.registry').MODELS
    # ConfigDict: models read their train/test configs by attribute
    model = registry.build(ConfigDict(copy.deepcopy(model_cfg)))
    if init_weights:
        logger = MMLogger.get_current_instance()
        level = logger.level
        logger.setLevel(logging.ERROR)
        try:
            model.init_weights()
        finally:
            logger.setLevel(level)
    return revert_sync_batchnorm(model)


def build_model(config: ConfigLike,
                checkpoint: Optional[str] = None,
                device: str = 'cpu',
                cfg_options: Optional[dict] = None,
                init_weights: bool = True) -> nn.Module:
    """The config's model, built from its scope's ``MODELS`` registry with
    no pretrained initialisation, ``init_weights()`` run (random weights of
    the model's own initialisation; ``init_weights=False`` keeps PyTorch's
    defaults), ``checkpoint`` loaded if given, SyncBN reverted to BN, on
    ``device``.  The mode is left as built (training).

    The model has ``model.cfg`` (the config read) and
    ``model.mmfapn_scope`` (``'mmdet'`` or ``'mmseg'``).

    Raises:
        FileNotFoundError: the config or the checkpoint does not exist.
        ValueError: the config is neither an mmdet nor an mmseg config.
    """
    if checkpoint is not None and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {checkpoint!r}')
    cfg = read_config(config, cfg_options)
    scope = config_scope(cfg)
    model_cfg = copy.deepcopy(cfg.model)
    drop_pretrained(model_cfg)
    # custom_imports again: a Config given as such has not imported them
    model = build_model_cfg(scope, model_cfg, cfg.get('custom_imports'),
                            init_weights)
    if checkpoint is not None:
        from mmengine.runner import load_checkpoint
        load_checkpoint(model, checkpoint, map_location='cpu')
    model = model.to(device)
    model.cfg = cfg
    model.mmfapn_scope = scope
    return model


def load_model(config: ConfigLike,
               checkpoint: Optional[str] = None,
               device: str = 'cpu') -> nn.Module:
    """Build the config's model with the toolbox's own inference entry
    (mmseg's ``init_model``, mmdet's ``init_detector``: test pipeline and
    ``dataset_meta`` set up for :func:`predict`), load ``checkpoint``
    (optional) and put it in eval mode on ``device``; SyncBN is reverted to
    BN, nothing is downloaded.

    The returned model has ``model.cfg`` (the config) and
    ``model.mmfapn_scope`` (``'mmdet'`` or ``'mmseg'``).

    Raises:
        FileNotFoundError: the config or the checkpoint does not exist.
        ValueError: the config is neither an mmdet nor an mmseg config.
    """
    from mmengine.model import revert_sync_batchnorm
    cfg = read_config(config)
    if checkpoint is not None and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint file not found: {checkpoint!r}')
    scope = config_scope(cfg)
    drop_pretrained(cfg.model)
    if scope == 'mmseg':
        from mmseg.apis import init_model
        model = init_model(cfg, checkpoint, device=device)
    else:
        from mmdet.apis import init_detector
        model = init_detector(cfg, checkpoint, device=device)
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

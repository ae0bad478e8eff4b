"""What ``tools/train.py`` and ``tools/test.py`` share: load a config, pick
the toolbox from its ``default_scope``, check the checkpoints it names, and
build mmengine's Runner.

Checks run before anything is built, so a typo in a checkpoint path costs
one clear line instead of a traceback after the model and datasets are
built.
"""
import importlib
import os.path as osp
from typing import Iterator, Optional, Sequence, Tuple

from mmengine.config import Config, ConfigDict

from mmfapn.registry import SCOPES

from .pretrained_weights import (check_pretrained_weights,
                                 pretrained_references)
from .safe_checkpoint import checkpoint_is_complete

# Prefixes that mmengine's CheckpointLoader resolves without a local file.
_REMOTE_PREFIXES = ('http://', 'https://', 'open-mmlab://', 'openmmlab://',
                    'torchvision://', 'mmcls://', 'modelzoo://', 'pavi://',
                    's3://', 'petrel://')


def load_config(path: str,
                cfg_options: Optional[dict] = None,
                work_dir: Optional[str] = None) -> Config:
    """Read ``path`` (importing ``custom_imports`` such as mmfapn), merge
    ``cfg_options`` and set ``work_dir`` (argument, config, or
    ``./work_dirs/<config name>``).

    Raises:
        FileNotFoundError: no such config file.
        ValueError: ``default_scope`` is not one of mmdet / mmseg, or that
            toolbox is not installed.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file not found: {path!r}')
    import mmfapn  # noqa: F401  (registration, for a config without it)
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    scope = cfg.get('default_scope')
    if scope not in SCOPES:
        raise ValueError(f'{path}: default_scope={scope!r}; mmfapn runs '
                         f'configs of {" or ".join(SCOPES)} (inherit a stock '
                         'config of one of them)')
    try:
        importlib.import_module(f'{scope}.registry')
    except ImportError as e:
        raise ValueError(f'{path}: default_scope={scope!r} but {scope} is '
                         f'not importable ({e})') from None
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(path))[0])
    return cfg


def _walk(node, path: str) -> Iterator[Tuple[str, object, object]]:
    """(key path, key, value) of every entry of nested dicts/lists."""
    if isinstance(node, (dict, ConfigDict)):
        for key, value in node.items():
            sub = f'{path}.{key}' if path else str(key)
            yield sub, key, value
            yield from _walk(value, sub)
        if node.get('type') == 'Pretrained' and 'checkpoint' in node:
            yield f'{path}.checkpoint', 'Pretrained', node['checkpoint']
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _walk(value, f'{path}[{i}]')


def checkpoint_references(cfg: Config) -> Sequence[Tuple[str, str]]:
    """Local checkpoint paths a config names, as (config key, path):
    ``load_from``, ``init_cfg=dict(type='Pretrained', checkpoint=...)`` and
    ``pretrained=...`` anywhere.  URLs and model-zoo names are skipped."""
    refs = []
    for key_path, key, value in _walk(cfg.to_dict(), ''):
        if not isinstance(value, str) or not value:
            continue
        if key in ('load_from', 'pretrained', 'Pretrained'):
            if not value.startswith(_REMOTE_PREFIXES):
                refs.append((key_path, value))
    return refs


def check_checkpoint_references(cfg: Config,
                                pretrained: bool = True) -> None:
    """Raise ``FileNotFoundError`` naming the config key of the first local
    checkpoint that does not exist (or ``ValueError`` if it is truncated).

    Args:
        cfg (Config): the config.
        pretrained (bool): also check the model's pretrained
            initialisations (training runs them, testing does not): a
            missing local file or a ``torchvision://`` name without
            torchvision raises
            :class:`~mmfapn.engine.pretrained_weights.PretrainedWeightsError`
            (a ``ValueError``) naming the override that trains from scratch.
    """
    init_checkpoints = {c for _, c in pretrained_references(cfg)}
    for key_path, path in checkpoint_references(cfg):
        if path in init_checkpoints:  # checked below, with the remedy
            continue
        full = osp.expanduser(path)
        if not osp.isfile(full):
            raise FileNotFoundError(
                f'config {key_path}={path!r}: checkpoint file not found')
        if not checkpoint_is_complete(full):
            raise ValueError(f'config {key_path}={path!r}: checkpoint file '
                             'is incomplete (truncated write)')
    if pretrained:
        check_pretrained_weights(cfg)


def build_runner(cfg: Config):
    """mmengine's Runner, or the config's ``runner_type`` from the scope's
    ``RUNNERS`` registry (as mmdet's and mmseg's tools do)."""
    from mmengine.runner import Runner
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    registry = importlib.import_module(f'{cfg.default_scope}.registry')
    return registry.RUNNERS.build(cfg)

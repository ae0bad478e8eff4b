"""Small helpers shared by the FaPN neck, the aligners and the heads."""
from typing import Optional, Sequence

import torch.nn.functional as F
from torch import Tensor

from mmfapn.registry import available_model_registries


def normalize_upsample_cfg(upsample_cfg: Optional[dict],
                           owner: str) -> dict:
    """The ``F.interpolate`` options of a top-down path.

    Default bilinear with ``align_corners=False`` (the released FaPN).  The
    target size is always the lateral's, so ``size`` / ``scale_factor``
    are rejected; ``align_corners`` is dropped for the modes that do not
    take it (``nearest``, ``area``), as mmdet's FPN configs may carry it.

    Args:
        upsample_cfg (dict, optional): user options; None for the default.
        owner (str): class name for the error message.
    """
    cfg = dict(mode='bilinear', align_corners=False)
    if upsample_cfg is not None:
        cfg = dict(upsample_cfg)
    if {'size', 'scale_factor'} & set(cfg):
        raise ValueError(f'{owner} upsamples to the lateral size; '
                         'upsample_cfg must not set size/scale_factor, '
                         f'got {cfg}')
    if cfg.get('mode') in ('nearest', 'area'):
        cfg.pop('align_corners', None)
    return cfg


def resize_to(x: Tensor, size: Sequence[int], upsample_cfg: dict) -> Tensor:
    """``x`` interpolated to ``size`` (H, W) with ``upsample_cfg`` (see
    :func:`normalize_upsample_cfg`); ``x`` itself when it already has that
    size (no copy, exact)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), **upsample_cfg)


def model_registry_of(type_name: str, what: str):
    """The ``MODELS`` registry (mmdet's or mmseg's, whichever knows it)
    that holds ``type_name``, independent of the default scope.

    Args:
        type_name (str): the registered name (a scope prefix is allowed).
        what (str): what is looked up, for the error message (e.g.
            ``'FaPN: context_cfg type'``).
    """
    registries = available_model_registries()
    for registry in registries:
        if registry.get(type_name) is not None:
            return registry
    raise KeyError(f'{what} {type_name!r} is not registered in ' +
                   ', '.join(r.name for r in registries))

"""Build a top-down aligner from its name or config: the one place that
maps the neck's ``align`` switch to a class (as timm's ``create_attn``)."""
import inspect
from typing import Dict, Optional, Union

from ..utils import model_registry_of
from .align_fa import AlignFA
from .base_aligner import BaseAligner
from .deconv_upsample import DeconvFusion
from .fam import FeatureAlignAfterFusion, FeatureAlignModule
from .sum_fusion import SumFusion

#: the ``align`` switch of :class:`~mmfapn.models.FaPN` (FaPN Table 1,
#: AlignSeg): name -> aligner class.  Other aligners are built by their
#: registered name, ``align_cfg=dict(type=...)``.
ALIGNERS: Dict[str, type] = {
    'fam': FeatureAlignModule,
    'fam_after_fusion': FeatureAlignAfterFusion,
    'flow': AlignFA,
    'deconv': DeconvFusion,
    'none': SumFusion,
}


def get_aligner(align: Union[str, type]) -> type:
    """The aligner class of a name of :data:`ALIGNERS`, a registered
    (mmdet/mmseg ``MODELS``) class name, or a class."""
    if isinstance(align, type):
        cls = align
    elif align in ALIGNERS:
        cls = ALIGNERS[align]
    elif isinstance(align, str):
        cls = model_registry_of(align, 'aligner type').get(align)
    else:
        raise TypeError(f'aligner type must be a str or a class, got '
                        f'{align!r}')
    if not (isinstance(cls, type) and issubclass(cls, BaseAligner)):
        raise TypeError(f'aligner {align!r} ({cls!r}) is not a BaseAligner '
                        'subclass: an aligner is called as (lateral, '
                        'coarse) and zeroes its offsets in init_offset()')
    return cls


def build_aligner(align: Union[str, dict],
                  channels: int,
                  shared: Optional[dict] = None) -> BaseAligner:
    """One aligner for ``channels``-channel maps.

    Args:
        align (str | dict): a name of :data:`ALIGNERS` or a registered
            class name, or a dict with ``type`` (one of those) and the
            aligner's own keyword arguments.
        channels (int): channels of the lateral, coarse and fused maps.
        shared (dict, optional): the host's settings (e.g. the neck's
            ``upsample_cfg``, ``conv_cfg``, ``norm_cfg``, ``deform_groups``,
            ``dcn_impl``); the aligner takes those named in its
            :attr:`~BaseAligner.shared_args`, and the dict's own arguments
            override them.

    Raises:
        ValueError: an argument the aligner class does not take.
    """
    cfg = dict(type=align) if isinstance(align, str) else dict(align)
    name = cfg.pop('type')
    cls = get_aligner(name)
    params = inspect.signature(cls).parameters.values()
    if not any(p.kind is p.VAR_KEYWORD for p in params):
        unknown = sorted(set(cfg) - {p.name for p in params})
        if unknown:
            raise ValueError(f'align_cfg {unknown} are not arguments of '
                             f'{cls.__name__} (align={name!r})')
    kwargs = {k: v for k, v in (shared or {}).items()
              if k in cls.shared_args}
    kwargs.update(cfg)
    return cls(channels, **kwargs)

"""FPN's top-down fusion: interpolate the coarse map and add the lateral."""
from typing import Optional

from torch import Tensor

from mmfapn.registry import register_model
from ..utils import normalize_upsample_cfg, resize_to
from .base_aligner import BaseAligner


@register_model
class SumFusion(BaseAligner):
    """``lateral + interpolate(coarse, size=lateral.shape[-2:])``, the plain
    fusion of FPN (``align='none'`` in :class:`~mmfapn.models.FaPN`).  No
    parameters.

    Args:
        channels (int): C of ``lateral``, ``coarse`` and the output (kept
            for the aligner protocol; unused).
        upsample_cfg (dict, optional): ``F.interpolate`` options, see
            :func:`~mmfapn.models.utils.normalize_upsample_cfg`. Default
            bilinear, ``align_corners=False``.
        init_cfg (dict, optional): mmengine init config.

    Shapes:
        lateral: (N, C, H, W); coarse: (N, C, h, w); output: (N, C, H, W).
    """

    shared_args = ('upsample_cfg', )

    def __init__(self,
                 channels: int,
                 upsample_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.channels = channels
        self.upsample_cfg = normalize_upsample_cfg(upsample_cfg,
                                                   type(self).__name__)

    def forward(self, lateral: Tensor, coarse: Tensor) -> Tensor:
        return lateral + resize_to(coarse, lateral.shape[-2:],
                                   self.upsample_cfg)

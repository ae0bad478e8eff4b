"""AlignSeg's Aligned Feature Aggregation (AlignFA): flow-warp both inputs,
then sum (Huang et al., AlignSeg, TPAMI 2021, §3.2)."""
from typing import Optional

import torch
from torch import Tensor

from mmfapn.registry import register_model
from ..utils import normalize_upsample_cfg, resize_to
from .base_aligner import BaseAligner
from .flow_head import FlowHead
from .flow_warp import flow_warp


@register_model
class AlignFA(BaseAligner):
    """AlignFA, a drop-in alternative to FaPN's FAM (``align='flow'`` in
    :class:`~mmfapn.models.necks.FaPN`)::

        up     = interpolate(coarse, size=lat.shape[-2:], **upsample_cfg)
        feat   = cat[lat, up]
        out    = warp(up, coarse_flow(feat)) + warp(lat, fine_flow(feat))

    Each flow head is ``conv1x1(2C -> C) + norm + act -> conv3x3(C -> 2)``
    with the last conv zero-initialised (no bias), so at initialisation the
    module is exactly ``lat + up``, plain FPN fusion.  Both warps use
    :func:`~mmfapn.models.layers.flow_warp.flow_warp` (pixel units, exact
    identity at zero flow); the AlignSeg release normalised its flows with
    (h, w) swapped and sampled off-grid at zero flow, which is not copied.
    The hidden convs keep ``ConvModule``'s init from construction
    (:meth:`reset_parameters` is the base class's no-op); :meth:`init_offset`
    zeroes the two flow convs.

    Args:
        channels (int): C of ``lat``, ``coarse`` and the output.
        flow_channels (int, optional): hidden channels of each flow head.
            Default ``channels`` (AlignSeg: 512 -> 256 for C = 256).
        conv_cfg (dict, optional): conv config of the hidden convs.
        norm_cfg (dict, optional): norm of the hidden convs. Default BN.
        act_cfg (dict, optional): activation of the hidden convs. Default
            ReLU.
        upsample_cfg (dict, optional): ``F.interpolate`` options for the
            coarse map (size is the lateral's). Default bilinear,
            ``align_corners=False``.
        padding_mode (str): outside-the-map rule of the warp ('zeros' or
            'border'). Default 'zeros'.
        init_cfg (dict, optional): mmengine init config.

    Shapes:
        lat: (N, C, H, W); coarse: (N, C, h, w) with any h, w;
        output: (N, C, H, W).
    """

    shared_args = ('upsample_cfg', 'conv_cfg')

    def __init__(self,
                 channels: int,
                 flow_channels: Optional[int] = None,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: Optional[dict] = dict(type='BN'),
                 act_cfg: Optional[dict] = dict(type='ReLU'),
                 upsample_cfg: Optional[dict] = None,
                 padding_mode: str = 'zeros',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.channels = channels
        flow_channels = channels if flow_channels is None else flow_channels
        self.upsample_cfg = normalize_upsample_cfg(upsample_cfg, 'AlignFA')
        self.padding_mode = padding_mode
        heads = dict(
            conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.coarse_flow = FlowHead(2 * channels, flow_channels, **heads)
        self.fine_flow = FlowHead(2 * channels, flow_channels, **heads)

    def init_offset(self) -> None:
        """Zero both flow convs (the warps start as the identity)."""
        self.coarse_flow.init_offset()
        self.fine_flow.init_offset()

    def flows(self, lat: Tensor, up: Tensor):
        """(coarse flow, fine flow), each (N, 2, H, W) in pixels."""
        feat = torch.cat([lat, up], dim=1)
        return self.coarse_flow(feat), self.fine_flow(feat)

    def forward(self, lat: Tensor, coarse: Tensor) -> Tensor:
        up = resize_to(coarse, lat.shape[-2:], self.upsample_cfg)
        coarse_flow, fine_flow = self.flows(lat, up)
        return flow_warp(up, coarse_flow, padding_mode=self.padding_mode) + \
            flow_warp(lat, fine_flow, padding_mode=self.padding_mode)

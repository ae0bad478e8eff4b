"""AlignSeg's Aligned Context Modeling (AlignCM): pooled context, flow-warped
to every pixel (Huang et al., AlignSeg, TPAMI 2021, §3.3)."""
from typing import Optional

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor

from mmfapn.registry import register_model
from .flow_head import FlowHead
from .flow_warp import flow_warp

FUSIONS = ('concat', 'sum')


@register_model
class AlignCM(BaseModule):
    """A context module for the top backbone level (C5), in place of a PPM::

        local   = local_conv(x)                          # 3x3, norm, act
        context = context_conv(avg_pool_KxK(x))          # 1x1, norm, act
        up      = interpolate(context, size=local.shape[-2:], bilinear)
        flow    = flow_head(cat[local, up])              # zero-initialised
        aligned = warp(context, flow)                    # K x K -> H x W
        out     = cat[local, aligned]      (fusion='concat', paper Eq. 3)
                  local + aligned          (fusion='sum', AlignSeg release)

    The warp samples the K x K context directly on the H x W grid with the
    shared :func:`~mmfapn.models.layers.flow_warp.flow_warp` (flow in output
    pixels, border padding, ``align_corners`` as given), so at zero flow
    ``aligned`` equals the bilinear upsampling ``up`` and the module starts
    as a one-bin PPM branch beside a local conv.

    Choices where AlignSeg is silent or inconsistent: one conv per branch as
    the paper describes (the release stacks a 1x1 and a 3x3 conv in both);
    the local conv is 3x3 and the context conv 1x1 (as a PPM branch); the
    default fusion is the paper's concatenation (the release sums).

    Args:
        in_channels (int): channels of the input, e.g. 2048 for ResNet C5.
        channels (int): channels of the local and the context features.
        bin_size (int): K, the pooled context size. Default 3 (AlignSeg's
            best, Table 4).
        fusion (str): 'concat' (default) or 'sum'.
        align_corners (bool): coordinate convention of the K x K -> H x W
            resampling (upsampling and warp). Default False.
        conv_cfg (dict, optional): conv config.
        norm_cfg (dict, optional): norm of every conv. Default BN.
        act_cfg (dict, optional): activation. Default ReLU.
        init_cfg (dict, optional): mmengine init config.

    Attributes:
        out_channels (int): ``2 * channels`` for 'concat', else ``channels``.

    Shapes:
        x: (N, in_channels, H, W) -> (N, out_channels, H, W).
    """

    def __init__(self,
                 in_channels: int,
                 channels: int,
                 bin_size: int = 3,
                 fusion: str = 'concat',
                 align_corners: bool = False,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: Optional[dict] = dict(type='BN'),
                 act_cfg: Optional[dict] = dict(type='ReLU'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not isinstance(bin_size, int) or isinstance(bin_size, bool) \
                or bin_size < 1:
            raise ValueError('AlignCM: bin_size must be a positive int, got '
                             f'{bin_size!r}')
        if fusion not in FUSIONS:
            raise ValueError(f'AlignCM: fusion must be one of {FUSIONS}, '
                             f'got {fusion!r}')
        if not isinstance(align_corners, bool):
            raise TypeError('AlignCM: align_corners must be a bool, got '
                            f'{align_corners!r}')
        self.in_channels = in_channels
        self.channels = channels
        self.bin_size = bin_size
        self.fusion = fusion
        self.align_corners = align_corners
        self.out_channels = 2 * channels if fusion == 'concat' else channels
        cfgs = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.local_conv = ConvModule(
            in_channels, channels, 3, padding=1, **cfgs)
        self.context_conv = ConvModule(in_channels, channels, 1, **cfgs)
        self.flow_head = FlowHead(2 * channels, channels, **cfgs)

    def init_offset(self) -> None:
        """Zero the flow conv (the context starts un-warped)."""
        self.flow_head.init_offset()

    def context(self, x: Tensor) -> Tensor:
        """The pooled context, (N, channels, K, K)."""
        return self.context_conv(F.adaptive_avg_pool2d(x, self.bin_size))

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or x.dim() != 4 or \
                x.shape[1] != self.in_channels:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x)
            raise ValueError(f'AlignCM: expected (N, {self.in_channels}, H, '
                             f'W) input, got {shape}')
        local = self.local_conv(x)
        context = self.context(x)
        up = F.interpolate(
            context,
            size=local.shape[-2:],
            mode='bilinear',
            align_corners=self.align_corners)
        flow = self.flow_head(torch.cat([local, up], dim=1))
        aligned = flow_warp(
            context,
            flow,
            align_corners=self.align_corners,
            padding_mode='border')
        if self.fusion == 'concat':
            return torch.cat([local, aligned], dim=1)
        return local + aligned

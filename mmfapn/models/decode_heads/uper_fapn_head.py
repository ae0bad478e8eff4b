"""UPerNet's head with FaPN's pyramid: FSM laterals and FAM top-down fusion."""
from typing import List, Sequence

import torch
from mmseg.models.decode_heads.uper_head import UPerHead
from mmseg.models.utils import resize
from torch import Tensor, nn

from mmfapn.models.layers import FeatureAlignModule, FeatureSelectionModule
from mmfapn.registry import register_model


@register_model
class UPerFaPNHead(UPerHead):
    """``UPerHead`` whose FPN is replaced by FaPN's feature pyramid.

    UPerNet has no neck: its FPN lives inside the head.  This head keeps
    everything of mmseg's ``UPerHead`` (the PPM on the top level and its
    bottleneck, the 3x3 ``fpn_convs``, the concatenation of all levels at the
    finest resolution and ``fpn_bottleneck``) and changes the two parts FaPN
    changes in an FPN.  For the levels ``C_1 .. C_{L-1}`` below the top::

        lat_i = FSM_i(C_i)                      # was ConvModule 1x1 (+BN+ReLU)
        prev  = PPM-bottleneck(C_L)             # top level, unchanged
        for i = L-1 .. 1:
            prev = FAM_i(lat_i, prev)           # was lat_i + bilinear(prev)
        out_i = fpn_convs_i(prev_i); fuse as UPerHead

    As in the released FaPN neck, FSMs and FAMs have no norm or activation
    (the FAM's own ReLU after the deformable conv excepted), the FAM
    upsamples bilinearly (``align_corners`` of the head) and its deformable
    conv has 8 groups; the top-down path carries the fused map before the
    3x3 output conv, as UPerHead's does.  The final upsampling of every
    level to the finest one before concatenation stays plain bilinear (FaPN
    aligns the top-down path only).

    Parameter overhead over ``UPerHead`` (bias-free 1x1 lateral + norm with
    ``2 * channels`` parameters, replaced by an FSM; one FAM added per
    level below the top), for ``channels = c``, ``deform_groups = g``, 3x3
    deformable kernel::

        per level:  FSM  C_i^2 + C_i * c
                  - lateral  C_i * c + 2c
                  + FAM  2c*c + (9c*c + c) + (9c * 27g + 27g)

    With ResNet-50 channels (256, 512, 1024, 2048), ``channels=512`` and
    ``g = 8``: FSMs 2,293,760, FAMs 3 x 3,879,640, removed laterals 920,576;
    **+13,012,104** parameters (UPerHead R-50 Cityscapes decode head
    40,523,283 -> 53,535,387).  Checked by the tests.

    Args:
        pool_scales (tuple[int]): PPM pooling scales. Default (1, 2, 3, 6).
        deform_groups (int): deformable groups of each FAM. Default 8.
        dcn_impl (str): deformable conv implementation, see
            :func:`mmfapn.ops.modulated_deform_conv2d`. Default 'auto'.
        **kwargs: ``BaseDecodeHead`` arguments (``in_channels``,
            ``channels``, ``num_classes``, ``norm_cfg``, ...), as for
            ``UPerHead``.

    Shapes:
        inputs: backbone levels (N, in_channels[i], H_i, W_i), finest first,
        any sizes; output: logits (N, num_classes, H_0, W_0).
    """

    def __init__(self,
                 pool_scales: Sequence[int] = (1, 2, 3, 6),
                 deform_groups: int = 8,
                 dcn_impl: str = 'auto',
                 **kwargs) -> None:
        super().__init__(pool_scales=pool_scales, **kwargs)
        if len(self.in_channels) < 2:
            raise ValueError('UPerFaPNHead needs at least 2 input levels, '
                             f'got in_channels={self.in_channels}')
        if self.channels % deform_groups:
            raise ValueError(
                f'UPerFaPNHead: channels={self.channels} must be divisible '
                f'by deform_groups={deform_groups}')
        # FSMs replace UPerHead's lateral ConvModules (same attribute name,
        # so the forward pass and checkpoints read alike).
        self.lateral_convs = nn.ModuleList([
            FeatureSelectionModule(c, self.channels, conv_cfg=self.conv_cfg)
            for c in self.in_channels[:-1]
        ])
        self.align_modules = nn.ModuleList([
            FeatureAlignModule(
                self.channels,
                deform_groups=deform_groups,
                upsample_cfg=dict(
                    mode='bilinear', align_corners=self.align_corners),
                conv_cfg=self.conv_cfg,
                dcn_impl=dcn_impl) for _ in self.in_channels[:-1]
        ])

    def init_weights(self) -> None:
        """Apply ``init_cfg``, then re-zero every FAM's offset/mask conv."""
        super().init_weights()
        for m in self.align_modules:  # plain nn.ModuleList: see BaseAligner
            m.init_offset()

    def _forward_feature(self, inputs: List[Tensor]) -> Tensor:
        """Fused features (N, channels, H_0, W_0) before ``cls_seg``."""
        inputs = self._transform_inputs(inputs)
        laterals = [
            lateral(inputs[i]) for i, lateral in enumerate(self.lateral_convs)
        ]
        laterals.append(self.psp_forward(inputs))
        levels = len(laterals)
        for i in range(levels - 1, 0, -1):
            laterals[i - 1] = self.align_modules[i - 1](laterals[i - 1],
                                                        laterals[i])
        outs = [self.fpn_convs[i](laterals[i]) for i in range(levels - 1)]
        outs.append(laterals[-1])
        for i in range(levels - 1, 0, -1):
            outs[i] = resize(
                outs[i],
                size=outs[0].shape[2:],
                mode='bilinear',
                align_corners=self.align_corners)
        return self.fpn_bottleneck(torch.cat(outs, dim=1))

"""Feature alignment module (FAM): aligns the upsampled coarse map to the
lateral before fusion with a guided modulated deformable conv."""
from typing import Optional

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model.weight_init import caffe2_xavier_init
from torch import Tensor

from mmfapn.ops import GuidedModulatedDeformConv2d
from mmfapn.registry import register_model
from ..utils import normalize_upsample_cfg, resize_to
from .base_aligner import BaseAligner


@register_model
class FeatureAlignModule(BaseAligner):
    """FaPN's FAM, as released.

    Given the lateral feature ``lat`` (already projected to ``channels``,
    e.g. by an FSM) and the coarser top-down feature ``coarse``::

        up     = interpolate(coarse, size=lat.shape[-2:], **upsample_cfg)
        guide  = conv1x1(cat[lat, 2 * up])            # offset_fusion
        aligned= relu(MDCN_3x3(up; offsets, mask from conv3x3(guide)))
        return aligned + lat

    The factor 2 on ``up`` feeds only the offset branch (released code).
    The offset/mask conv is zero at init, so the MDCN starts as 0.5 x a
    plain 3x3 conv; :meth:`init_offset` (called by :meth:`init_weights`
    and by every host after its own init) keeps it zero whatever
    ``init_cfg`` a parent applies.  ``residual=False`` returns ``aligned``
    alone, for a host that fuses it with ``lat`` itself (the real-time
    head's concatenation).

    With ``single_input=True`` (FaPN Table 1, "FAM after fusion") the
    module takes one map ``x`` (the fused ``lat + up``) and predicts the
    offsets from it directly, without the 1x1 offset fusion conv::

        return relu(MDCN_3x3(x; offsets, mask from conv3x3(x)))

    There is no residual: the aligned map replaces the fused one, as
    ``aligned`` replaces ``up`` before fusion in the default mode.  This
    one-map call is the building block of :class:`FeatureAlignAfterFusion`,
    the aligner that takes ``(lateral, coarse)`` as every other one.

    Args:
        channels (int): C of ``lat``, ``coarse`` and the output.
        deform_groups (int): deformable groups of the MDCN. Default 8.
        kernel_size (int): MDCN kernel size. Default 3.
        upsample_cfg (dict): ``F.interpolate`` options (without ``size``/
            ``scale_factor``). Default bilinear, ``align_corners=False``.
        norm_cfg (dict, optional): norm after the 1x1 offset fusion conv
            (None as released in FaPN; GN in the MaskFormer decoder).
        conv_cfg (dict, optional): conv config of the offset fusion conv.
        up_scale (float): factor on ``up`` in the offset branch. Default 2.
        dcn_impl (str): deformable conv implementation, see
            :func:`mmfapn.ops.modulated_deform_conv2d`.
        single_input (bool): the one-input "after fusion" mode above
            (no ``offset_fusion``). Default False.
        residual (bool): add ``lat`` to the aligned map (two-input mode).
            Default True, as released.
        init_cfg (dict, optional): mmengine init config.

    Shapes:
        lat: (N, C, H, W); coarse: (N, C, h, w) with any h, w;
        output: (N, C, H, W).  ``single_input``: x (N, C, H, W) -> same.
    """

    shared_args = ('upsample_cfg', 'conv_cfg', 'norm_cfg', 'deform_groups',
                   'dcn_impl')

    def __init__(self,
                 channels: int,
                 deform_groups: int = 8,
                 kernel_size: int = 3,
                 upsample_cfg: Optional[dict] = None,
                 norm_cfg: Optional[dict] = None,
                 conv_cfg: Optional[dict] = None,
                 up_scale: float = 2.0,
                 dcn_impl: str = 'auto',
                 single_input: bool = False,
                 residual: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.channels = channels
        self.single_input = single_input
        self.residual = residual
        self.up_scale = up_scale
        self.upsample_cfg = normalize_upsample_cfg(upsample_cfg,
                                                   'FeatureAlignModule')
        self.offset_fusion = None if single_input else ConvModule(
            2 * channels,
            channels,
            1,
            bias=False,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=None)
        self.dcn = GuidedModulatedDeformConv2d(
            channels,
            channels,
            kernel_size,
            guide_channels=channels,
            padding=kernel_size // 2,
            deform_groups=deform_groups,
            bias=True,
            dcn_impl=dcn_impl)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Released init: Caffe2Xavier 1x1 conv, mmcv default MDCN weight
        (U(+-1/sqrt(C*k*k)), bias 0), zero offset/mask conv."""
        if self.offset_fusion is not None:
            caffe2_xavier_init(self.offset_fusion.conv)
        self.dcn.init_weights()

    def init_weights(self) -> None:
        super().init_weights()
        if self.init_cfg is None:
            self.reset_parameters()
        self.init_offset()

    def init_offset(self) -> None:
        """Zero the offset/mask conv (offsets 0, mask 0.5)."""
        self.dcn.init_offset()

    def align(self, lat: Tensor, up: Tensor) -> Tensor:
        """The aligned upsampled map (before the sum with ``lat``)."""
        if self.single_input:
            raise TypeError('FeatureAlignModule(single_input=True) aligns '
                            'one map: call it as fam(x), not align(lat, up)')
        guide = self.offset_fusion(torch.cat([lat, up * self.up_scale], 1))
        return F.relu(self.dcn(up, guide))

    def forward(self, lat: Tensor, coarse: Optional[Tensor] = None) -> Tensor:
        if self.single_input:
            if coarse is not None:
                raise TypeError('FeatureAlignModule(single_input=True) takes '
                                'one map (the fused one), got two')
            return F.relu(self.dcn(lat, lat))
        if coarse is None:
            raise TypeError('FeatureAlignModule needs (lat, coarse); '
                            'set single_input=True for the one-map mode')
        up = resize_to(coarse, lat.shape[-2:], self.upsample_cfg)
        aligned = self.align(lat, up)
        return aligned + lat if self.residual else aligned


@register_model
class FeatureAlignAfterFusion(FeatureAlignModule):
    """FAM after fusion (FaPN Table 1, "FPN + FAM† + FSM";
    ``align='fam_after_fusion'`` in :class:`~mmfapn.models.FaPN`)::

        x = lateral + interpolate(coarse, size=lateral.shape[-2:])
        return relu(MDCN_3x3(x; offsets, mask from conv3x3(x)))

    The FAM in its one-input mode (``single_input=True``, no 1x1 offset
    fusion conv, no residual) applied to the FPN-fused map; same
    parameters and state-dict keys.

    Args:
        channels (int): C of ``lateral``, ``coarse`` and the output.
        **kwargs: the other :class:`FeatureAlignModule` arguments
            (``single_input`` is always True).

    Shapes:
        lateral: (N, C, H, W); coarse: (N, C, h, w); output: (N, C, H, W).
    """

    def __init__(self, channels: int, **kwargs) -> None:
        super().__init__(channels, single_input=True, **kwargs)

    def forward(self, lateral: Tensor, coarse: Tensor) -> Tensor:
        fused = lateral + resize_to(coarse, lateral.shape[-2:],
                                    self.upsample_cfg)
        return super().forward(fused)

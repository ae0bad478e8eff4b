"""A modulated deformable conv whose offsets come from a guidance tensor."""
from typing import Tuple, Union

import torch
from mmcv.ops import ModulatedDeformConv2d
from torch import Tensor, nn

from .modulated_deform_conv import IMPLS, modulated_deform_conv2d


class GuidedModulatedDeformConv2d(ModulatedDeformConv2d):
    """DCNv2 that samples ``x`` with offsets predicted from another tensor.

    mmcv's ``ModulatedDeformConv2dPack`` predicts offsets from its own input;
    FaPN predicts them from the lateral and the upsampled map (the "guide")
    while sampling only the upsampled map.  Parameter names follow mmcv's
    Pack (``weight``, ``bias``, ``conv_offset.*``), whose offset conv is laid
    out like the official DCNv2 ``conv_offset_mask``: its output is chunked
    into (o1, o2, mask) thirds, ``offset = cat(o1, o2)``, ``mask =
    sigmoid(mask)``.

    Args:
        in_channels (int): channels of ``x`` (C_in).
        out_channels (int): output channels.
        kernel_size (int | tuple): deformable kernel size (kh, kw).
        guide_channels (int): channels of the guide tensor.
        stride, padding, dilation: as ``nn.Conv2d``.
        deform_groups (int): offset groups; divides ``in_channels``.
        bias (bool): whether the main conv has a bias.
        offset_kernel_size (int): kernel of the offset/mask conv (padding
            keeps the size).
        dcn_impl (str): implementation passed to
            :func:`mmfapn.ops.modulated_deform_conv2d`.

    Shapes:
        x: (N, C_in, H, W); guide: (N, guide_channels, H_out, W_out);
        output: (N, out_channels, H_out, W_out).

    The offset/mask conv starts at zero (offsets 0, mask 0.5), so at
    initialisation the layer is 0.5 x a plain convolution; :meth:`init_weights`
    restores that zero whatever a parent's ``init_cfg`` did to it.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: Union[int, Tuple[int, int]],
                 guide_channels: int,
                 stride: int = 1,
                 padding: int = 0,
                 dilation: int = 1,
                 deform_groups: int = 1,
                 bias: bool = True,
                 offset_kernel_size: int = 3,
                 dcn_impl: str = 'auto') -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=1,
            deform_groups=deform_groups,
            bias=bias)
        if dcn_impl not in IMPLS:
            raise ValueError(f'dcn_impl must be one of {IMPLS}, '
                             f'got {dcn_impl!r}')
        self.dcn_impl = dcn_impl
        kh, kw = self.kernel_size
        self.conv_offset = nn.Conv2d(
            guide_channels,
            3 * deform_groups * kh * kw,
            kernel_size=offset_kernel_size,
            padding=offset_kernel_size // 2,
            bias=True)
        self.init_offset()

    def init_offset(self) -> None:
        """Zero the offset/mask conv: offsets 0 and mask 0.5 at start."""
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def init_weights(self) -> None:
        super().init_weights()
        # ModulatedDeformConv2d.__init__ calls init_weights before
        # conv_offset exists.
        if hasattr(self, 'conv_offset'):
            self.init_offset()

    def offset_and_mask(self, guide: Tensor) -> Tuple[Tensor, Tensor]:
        """Predict (offset, mask) from ``guide``."""
        o1, o2, mask = torch.chunk(self.conv_offset(guide), 3, dim=1)
        return torch.cat((o1, o2), dim=1), torch.sigmoid(mask)

    def forward(self, x: Tensor, guide: Tensor) -> Tensor:  # type: ignore[override]
        offset, mask = self.offset_and_mask(guide)
        return modulated_deform_conv2d(
            x,
            offset,
            mask,
            self.weight,
            self.bias,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            deform_groups=self.deform_groups,
            impl=self.dcn_impl)

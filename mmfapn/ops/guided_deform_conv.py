"""A modulated deformable conv whose offsets come from a guidance tensor."""
import math
from typing import Tuple, Union

import torch
from torch import Tensor, nn
from torch.nn.modules.utils import _pair, _single

from .modulated_deform_conv import check_impl, modulated_deform_conv2d


class GuidedModulatedDeformConv2d(nn.Module):
    """DCNv2 that samples ``x`` with offsets predicted from another tensor.

    It has the attributes, parameters and initialisation of mmcv's
    ``ModulatedDeformConv2d`` (``weight``, ``bias``, ``in_channels``, ...,
    weight U(+-1/sqrt(C_in*kh*kw)), bias 0) without subclassing it: mmcv's
    class cannot even be imported when mmcv's compiled ops are missing,
    while this layer then runs on the PyTorch implementation.

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
        super().__init__()
        check_impl(dcn_impl, 'dcn_impl')
        if in_channels % deform_groups:
            raise ValueError(f'in_channels ({in_channels}) must be divisible '
                             f'by deform_groups ({deform_groups})')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self.dilation = _pair(dilation)
        self.groups = 1
        self.deform_groups = deform_groups
        # nn.Conv2d compatibility, as mmcv's class
        self.transposed = False
        self.output_padding = _single(0)
        self.weight = nn.Parameter(
            torch.empty(out_channels, in_channels, *self.kernel_size))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels))
        else:
            self.register_parameter('bias', None)
        self.dcn_impl = dcn_impl
        # same random stream as mmcv's class: main weight first
        self.reset_main_weights()
        kh, kw = self.kernel_size
        self.conv_offset = nn.Conv2d(
            guide_channels,
            3 * deform_groups * kh * kw,
            kernel_size=offset_kernel_size,
            padding=offset_kernel_size // 2,
            bias=True)
        self.init_offset()

    def reset_main_weights(self) -> None:
        """mmcv's ``ModulatedDeformConv2d.init_weights``: weight
        U(+-1/sqrt(C_in*kh*kw)), bias 0."""
        n = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        stdv = 1. / math.sqrt(n)
        self.weight.data.uniform_(-stdv, stdv)
        if self.bias is not None:
            self.bias.data.zero_()

    def init_offset(self) -> None:
        """Zero the offset/mask conv: offsets 0 and mask 0.5 at start."""
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def init_weights(self) -> None:
        """mmcv's init for the main conv, zero offset/mask conv."""
        self.reset_main_weights()
        self.init_offset()

    def offset_and_mask(self, guide: Tensor) -> Tuple[Tensor, Tensor]:
        """Predict (offset, mask) from ``guide``."""
        o1, o2, mask = torch.chunk(self.conv_offset(guide), 3, dim=1)
        return torch.cat((o1, o2), dim=1), torch.sigmoid(mask)

    def forward(self, x: Tensor, guide: Tensor) -> Tensor:
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

"""A learnable 2x upsampling (transposed conv), FaPN's "deconv" ablation."""
from typing import Sequence

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmfapn.registry import register_model
from .base_aligner import BaseAligner


def bilinear_kernel(kernel_size: int, stride: int) -> Tensor:
    """The (k, k) bilinear interpolation kernel of a stride-``stride``
    transposed conv (FCN's upsampling init)."""
    center = (kernel_size - 1) / 2
    taps = torch.arange(kernel_size, dtype=torch.float64)
    filt = 1 - (taps - center).abs() / stride
    return (filt[:, None] * filt[None, :]).clamp(min=0)


class DeconvUpsample(BaseModule):
    """``ConvTranspose2d(C, C, 4, stride=2, padding=1)``, cropped or padded
    by one pixel to the lateral's size.

    FaPN's Table 1 row "FPN + deconv + FSM" replaces the bilinear upsampling
    (and the FAM) by "the deconvolution which is a learnable upsample
    operation"; the paper gives no more detail.  This module uses the
    standard learnable 2x upsampler (kernel 4, stride 2, padding 1, bias;
    1,048,832 parameters at C = 256), initialised as bilinear upsampling
    (FCN): channel c reads only channel c with the bilinear kernel, bias
    0, so at initialisation it equals ``F.interpolate(x, scale_factor=2,
    mode='bilinear', align_corners=False)`` away from the border (where the
    transposed conv sees zeros instead of the replicated edge).

    Sizes: the output is ``2h x 2w``, or ``2h + 1`` via ``output_padding``
    when the lateral is one pixel larger; a lateral one pixel smaller
    (odd input sizes through stride-2 convs, ``ceil(H / 2)``) gets the
    top-left ``H x W`` crop, which keeps output pixel ``2i`` on input
    pixel ``i`` as the strided backbone does.  Other ratios raise.

    Args:
        channels (int): C of the input and output.
        kernel_size (int): kernel of the transposed conv. Default 4.
        init_cfg (dict, optional): mmengine init config.

    Shapes:
        x: (N, C, h, w), size (H, W) with H in [2h - 1, 2h + 1] (same for
        W) -> (N, C, H, W).
    """

    def __init__(self,
                 channels: int,
                 kernel_size: int = 4,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if kernel_size < 2 or kernel_size % 2:
            raise ValueError('DeconvUpsample: kernel_size must be even and '
                             f'>= 2 for an exact 2x upsampling, got '
                             f'{kernel_size}')
        self.channels = channels
        self.deconv = nn.ConvTranspose2d(
            channels,
            channels,
            kernel_size,
            stride=2,
            padding=(kernel_size - 2) // 2,
            bias=True)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Bilinear-upsampling init (per channel), zero bias."""
        k = self.deconv.kernel_size[0]
        weight = torch.zeros_like(self.deconv.weight)
        kernel = bilinear_kernel(k, 2).to(weight.dtype)
        idx = torch.arange(self.channels)
        weight[idx, idx] = kernel
        with torch.no_grad():
            self.deconv.weight.copy_(weight)
            self.deconv.bias.zero_()

    def init_weights(self) -> None:
        super().init_weights()
        if self.init_cfg is None:
            self.reset_parameters()

    def forward(self, x: Tensor, size: Sequence[int]) -> Tensor:
        h, w = x.shape[-2:]
        size = tuple(int(s) for s in size)
        for name, big, small in (('height', size[0], h), ('width', size[1],
                                                          w)):
            if not 2 * small - 1 <= big <= 2 * small + 1:
                raise ValueError(
                    f'DeconvUpsample: cannot upsample {name} {small} to '
                    f'{big} with a 2x transposed conv (target must be in '
                    f'[{2 * small - 1}, {2 * small + 1}])')
        out_size = (max(size[0], 2 * h), max(size[1], 2 * w))
        out = self.deconv(x, output_size=out_size)
        return out[..., :size[0], :size[1]]


@register_model
class DeconvFusion(DeconvUpsample, BaseAligner):
    """``lateral + DeconvUpsample(coarse)``: FaPN's Table 1 row "FPN +
    deconv + FSM" (``align='deconv'`` in :class:`~mmfapn.models.FaPN`),
    the learnable upsampling of :class:`DeconvUpsample` in place of the
    interpolation, fused by a sum.  Same parameters and state-dict keys
    as :class:`DeconvUpsample`.

    Args:
        channels (int): C of ``lateral``, ``coarse`` and the output.
        kernel_size (int): kernel of the transposed conv. Default 4.
        init_cfg (dict, optional): mmengine init config.

    Shapes:
        lateral: (N, C, H, W); coarse: (N, C, h, w) with H in [2h - 1,
        2h + 1] (same for W); output: (N, C, H, W).
    """

    def forward(self, lateral: Tensor, coarse: Tensor) -> Tensor:
        return lateral + super().forward(coarse, lateral.shape[-2:])

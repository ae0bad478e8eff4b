"""Feature selection module (FSM), FaPN's lateral connection."""
from typing import Optional

import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from mmengine.model.weight_init import caffe2_xavier_init
from torch import Tensor

from mmfapn.registry import register_model


@register_model
class FeatureSelectionModule(BaseModule):
    """Channel attention with a skip, then a 1x1 projection.

    ``att = sigmoid(conv1x1(avg_pool(x)))``; ``y = conv1x1(x + x * att)``.
    Both convs have no bias, norm or activation in the released model, and
    are initialised with Caffe2Xavier (detectron2's ``c2_xavier_fill``).

    Args:
        in_channels (int): C_in of ``x``.
        out_channels (int): C_out of the projection.
        skip (bool): keep the ``x +`` skip.  ``False`` gives a plain SE block
            followed by the projection (the paper's "FAM + SE" ablation row).
        conv_cfg (dict, optional): conv layer config for both convs.
        norm_cfg (dict, optional): norm after each conv (None as released).
        init_cfg (dict, optional): mmengine init config; None keeps the
            released init applied at construction.

    Shapes:
        x: (N, C_in, H, W) -> (N, C_out, H, W).
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 skip: bool = True,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.skip = skip
        self.conv_atten = ConvModule(
            in_channels,
            in_channels,
            1,
            bias=False,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=None)
        self.conv = ConvModule(
            in_channels,
            out_channels,
            1,
            bias=False,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Released init: Caffe2Xavier on both convs."""
        caffe2_xavier_init(self.conv_atten.conv)
        caffe2_xavier_init(self.conv.conv)

    def init_weights(self) -> None:
        super().init_weights()
        if self.init_cfg is None:
            # ConvModule re-inits with kaiming when its init_weights runs.
            self.reset_parameters()

    def attention(self, x: Tensor) -> Tensor:
        """Channel weights in (0, 1), shape (N, C_in, 1, 1)."""
        # adaptive pooling instead of avg_pool2d(x, x.shape[2:]): same
        # result, and ONNX-exportable with dynamic sizes.
        return self.conv_atten(F.adaptive_avg_pool2d(x, 1)).sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        selected = x * self.attention(x)
        if self.skip:
            selected = x + selected
        return self.conv(selected)

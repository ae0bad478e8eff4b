"""AlignSeg's flow predictor: a zero-initialised 2-channel (dx, dy) head."""
from typing import Optional

from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor, nn


class FlowHead(BaseModule):
    """``conv1x1 (+ norm + act) -> conv3x3 -> 2 channels``, the last conv
    zero-initialised and without bias, so the predicted flow is exactly 0
    at the start (AlignSeg's ``delta_gen``).

    The flow is in pixels, channel 0 = dx, channel 1 = dy (see
    :func:`~mmfapn.models.layers.flow_warp.flow_warp`).

    Args:
        in_channels (int): channels of the input (usually a concatenation).
        channels (int): channels of the hidden 1x1 conv.
        conv_cfg (dict, optional): conv config of the hidden conv.
        norm_cfg (dict, optional): norm of the hidden conv. Default BN, as
            AlignSeg.
        act_cfg (dict, optional): activation of the hidden conv. Default
            ReLU.
        init_cfg (dict, optional): mmengine init config.

    Shapes:
        x: (N, in_channels, H, W) -> flow (N, 2, H, W).
    """

    def __init__(self,
                 in_channels: int,
                 channels: int,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: Optional[dict] = dict(type='BN'),
                 act_cfg: Optional[dict] = dict(type='ReLU'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.hidden = ConvModule(
            in_channels,
            channels,
            1,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg)
        self.flow = nn.Conv2d(channels, 2, 3, padding=1, bias=False)
        self.init_offset()

    def init_offset(self) -> None:
        """Zero the flow conv: the warp starts as the identity."""
        nn.init.zeros_(self.flow.weight)

    def init_weights(self) -> None:
        super().init_weights()
        # a parent's init_cfg (e.g. Xavier on every Conv2d) must not turn
        # the warp on at initialisation
        self.init_offset()

    def forward(self, x: Tensor) -> Tensor:
        return self.flow(self.hidden(x))

"""FaPN pixel decoder for MaskFormer-style heads (mmdet's ``MaskFormerHead``,
also used by mmseg's ``MaskFormerHead``)."""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule, ModuleList
from mmengine.model.weight_init import caffe2_xavier_init
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from mmfapn.models.layers import FeatureAlignModule, FeatureSelectionModule
from mmfapn.registry import register_model


class BorrowedNorm(nn.Module):
    """Applies a norm layer that another module owns.

    The layer is kept out of this module's registered children, so its
    parameters are counted, saved and handed to the optimizer once, under
    the owner's name (mmengine's optimizer constructor would otherwise put
    a shared layer's parameters in two groups, which torch rejects).
    """

    def __init__(self, norm: nn.Module) -> None:
        super().__init__()
        object.__setattr__(self, 'borrowed', norm)  # not a submodule

    def forward(self, x: Tensor) -> Tensor:
        return self.borrowed(x)


@register_model
class FaPNPixelDecoder(BaseModule):
    """MaskFormer's FPN pixel decoder with FaPN's feature alignment.

    The released MaskFormer + FaPN decoder (``BasePixelFANDecoder`` of
    ShihuaHuang95/FaPN-full, behind the paper's Table 7) is, for backbone
    levels ``C_2 .. C_5`` and ``feat_channels = 256``::

        y = ReLU(GN(conv3x3(C_5)))                      # last_feat_conv
        for i = 4, 3, 2:
            lat = GN(conv1x1(C_i))                      # lateral, no bias
            y   = FAM(lat, y)                           # align, then + lat
            y   = ReLU(GN(conv3x3(y)))                  # output conv
        mask_feature = conv3x3(y)                       # bias, stride 4
        memory       = conv1x1(C_5)                     # bias (input_proj)

    ``FAM`` is :class:`~mmfapn.models.FeatureAlignModule` *without* FSM:
    ``up = bilinear(y)``; offsets and mask from ``conv3x3(GN(conv1x1(cat[lat,
    2 * up])))`` (zero-initialised); ``relu(MDCN(up)) + lat``.  Unlike the
    FaPN neck, the top-down path carries the feature *after* the output conv
    (as MaskFormer's decoder does) and the top level has a 3x3 conv.

    ``memory`` is what the transformer decoder attends to.  The released
    model feeds it the backbone's top level through the predictor's 1x1
    ``input_proj`` (``TRANSFORMER_IN_FEATURE: res5``), which mmdet's head adds
    only for its own ``PixelDecoder`` class, so this decoder owns that
    projection.  With ``encoder`` set (mmdet's COCO-panoptic MaskFormer), the
    projection feeds a DETR transformer encoder whose output is the memory
    and the input of ``last_feat_conv`` (as mmdet's
    ``TransformerEncoderPixelDecoder``).

    Official quirk: the released ``FeatureAlign`` gets the *same* ``GN``
    instance as the output conv of its level, so the offset fusion conv and
    the output conv share one pair of affine parameters (statistics are
    computed per call; only the 2 x 256 weights are shared).
    ``share_offset_norm=True`` (default) reproduces it: the offset fusion
    applies the output conv's GN through :class:`BorrowedNorm`, so the
    parameters exist once (``output_convs.i.gn.*``; the released checkpoints
    hold them under both names, with equal values) and the parameter count
    is the released one.  ``False`` gives each conv its own GN (+1,536
    parameters with 256 channels and 4 levels).

    Args:
        in_channels (list[int]): channels of the backbone levels, finest
            first (strides 4, 8, 16, 32 for MaskFormer).
        feat_channels (int): channels of the decoder and of ``memory``.
        out_channels (int): channels of ``mask_feature``.
        norm_cfg (dict, optional): norm of the laterals, the offset fusion
            convs and the 3x3 convs. Default ``GN(32)`` as released. Convs
            followed by a norm have no bias.
        act_cfg (dict, optional): activation after the 3x3 convs.
            Default ReLU.
        use_fsm (bool): lateral = FaPN's FSM
            (:class:`~mmfapn.models.FeatureSelectionModule`, exactly as in
            the FaPN neck: no norm) instead of ``GN(conv1x1)``; the paper's
            full FaPN.  Default False (the released decoder has no FSM).
        share_offset_norm (bool): reproduce the shared-GN quirk (see above).
            Needs a ``norm_cfg`` without running statistics (GN, LN).
            Default True.
        deform_groups (int): deformable groups of each FAM. Default 8.
        upsample_cfg (dict, optional): interpolation of the top-down path,
            see :class:`~mmfapn.models.FeatureAlignModule`. Default bilinear,
            ``align_corners=False``.
        dcn_impl (str): deformable conv implementation ('auto', 'mmcv',
            'torch'), see :func:`mmfapn.ops.modulated_deform_conv2d`.
        encoder (dict, optional): mmdet ``DetrTransformerEncoder`` config
            (its ``embed_dims`` must equal ``feat_channels``). Default None.
        positional_encoding (dict): mmdet ``SinePositionalEncoding``
            arguments of the encoder; used only with ``encoder``.
        init_cfg (dict | list[dict], optional): extra mmengine init applied
            by :meth:`init_weights`; None keeps the released init.

    Shapes:
        feats: list of (B, in_channels[i], H_i, W_i), finest first (any
        sizes, odd included); returns ``mask_feature`` (B, out_channels, H_0,
        W_0) and ``memory`` (B, feat_channels, H_-1, W_-1).
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 feat_channels: int,
                 out_channels: int,
                 norm_cfg: Optional[dict] = dict(type='GN', num_groups=32),
                 act_cfg: Optional[dict] = dict(type='ReLU'),
                 use_fsm: bool = False,
                 share_offset_norm: bool = True,
                 deform_groups: int = 8,
                 upsample_cfg: Optional[dict] = None,
                 dcn_impl: str = 'auto',
                 encoder: Optional[dict] = None,
                 positional_encoding: dict = dict(
                     num_feats=128, normalize=True),
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not isinstance(in_channels, (list, tuple)) or \
                len(in_channels) < 2 or not all(
                    isinstance(c, int) and c > 0 for c in in_channels):
            raise TypeError('FaPNPixelDecoder: in_channels must be a list of '
                            f'at least 2 positive ints, got {in_channels!r}')
        for name, value in (('feat_channels', feat_channels),
                            ('out_channels', out_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or \
                    value < 1:
                raise TypeError(f'FaPNPixelDecoder: {name} must be a '
                                f'positive int, got {value!r}')
        if share_offset_norm and norm_cfg is None:
            raise ValueError('FaPNPixelDecoder: share_offset_norm=True needs '
                             'a norm_cfg (got norm_cfg=None); set '
                             'share_offset_norm=False')
        self.in_channels = list(in_channels)
        self.feat_channels = feat_channels
        self.out_channels = out_channels
        self.num_inputs = len(in_channels)
        self.use_fsm = use_fsm
        self.share_offset_norm = share_offset_norm
        use_bias = norm_cfg is None

        self.lateral_convs = ModuleList()
        self.align_modules = ModuleList()
        self.output_convs = ModuleList()
        for c in self.in_channels[:-1]:
            if use_fsm:
                lateral = FeatureSelectionModule(c, feat_channels)
            else:
                lateral = ConvModule(
                    c, feat_channels, 1, bias=use_bias, norm_cfg=norm_cfg,
                    act_cfg=None)
            output_conv = ConvModule(
                feat_channels, feat_channels, 3, padding=1, bias=use_bias,
                norm_cfg=norm_cfg, act_cfg=act_cfg)
            align = FeatureAlignModule(
                feat_channels,
                deform_groups=deform_groups,
                upsample_cfg=upsample_cfg,
                norm_cfg=norm_cfg,
                dcn_impl=dcn_impl)
            if share_offset_norm:
                # the released code passes one GN instance to both convs
                norm = output_conv.norm
                if getattr(norm, 'track_running_stats', False):
                    raise ValueError(
                        'FaPNPixelDecoder: share_offset_norm=True shares one '
                        'norm layer between two convs, which needs a norm '
                        'without running statistics (e.g. GN), got '
                        f'norm_cfg={norm_cfg}')
                fusion = align.offset_fusion
                setattr(fusion, fusion.norm_name, BorrowedNorm(norm))
            self.lateral_convs.append(lateral)
            self.align_modules.append(align)
            self.output_convs.append(output_conv)

        top_channels = self.in_channels[-1]
        # memory: 1x1 projection of the top level (MaskFormer's input_proj)
        self.input_proj = nn.Conv2d(top_channels, feat_channels, 1)
        self.encoder = None
        if encoder is not None:
            # mmdet-only modules, imported here so that mmfapn imports
            # without mmdet
            from mmdet.models.layers import (DetrTransformerEncoder,
                                             SinePositionalEncoding)
            self.encoder = DetrTransformerEncoder(**encoder)
            if self.encoder.embed_dims != feat_channels:
                raise ValueError(
                    'FaPNPixelDecoder: encoder embed_dims '
                    f'({self.encoder.embed_dims}) must equal feat_channels '
                    f'({feat_channels})')
            self.positional_encoding = SinePositionalEncoding(
                **positional_encoding)
            top_channels = feat_channels
        self.last_feat_conv = ConvModule(
            top_channels, feat_channels, 3, padding=1, bias=use_bias,
            norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.mask_feature = nn.Conv2d(
            feat_channels, out_channels, 3, padding=1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Released init: Caffe2Xavier (bias 0) for every plain conv, norms
        at (1, 0), FSM/FAM their own (zero offset/mask convs); encoder
        matrices Xavier-uniform as mmdet's."""
        convs = [m.conv for m in self.output_convs]
        convs += [self.last_feat_conv.conv, self.input_proj, self.mask_feature]
        for lateral in self.lateral_convs:
            if isinstance(lateral, FeatureSelectionModule):
                lateral.reset_parameters()
            else:
                convs.append(lateral.conv)
        for conv in convs:
            caffe2_xavier_init(conv, bias=0)
        for module in self.modules():
            if isinstance(module, (nn.GroupNorm, _BatchNorm)) and \
                    module.affine:
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for align in self.align_modules:
            align.reset_parameters()
        if self.encoder is not None:
            for p in self.encoder.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)

    def init_weights(self) -> None:
        """Apply ``init_cfg`` if given, else the released init; the
        offset/mask convs are zero in both cases.

        mmengine's recursive init (and ``ConvModule.init_weights``'s kaiming)
        would otherwise replace the released init, and a parent's
        ``init_cfg`` would wipe the zero offset/mask convs.
        """
        super().init_weights()
        if self.init_cfg is None:
            self.reset_parameters()
        for align in self.align_modules:
            align.init_offset()

    def _check_inputs(self, feats: Sequence[Tensor]) -> None:
        if not isinstance(feats, (list, tuple)):
            raise TypeError('FaPNPixelDecoder: feats must be a list/tuple of '
                            f'tensors, got {type(feats).__name__}')
        if len(feats) != self.num_inputs:
            raise ValueError(
                f'FaPNPixelDecoder: expected {self.num_inputs} feature maps '
                f'(in_channels={self.in_channels}), got {len(feats)}')
        for i, x in enumerate(feats):
            if not isinstance(x, Tensor) or x.dim() != 4:
                shape = tuple(x.shape) if isinstance(x, Tensor) else type(x)
                raise ValueError(f'FaPNPixelDecoder: feats[{i}] must be a '
                                 f'4-D (B, C, H, W) tensor, got {shape}')
            if x.shape[1] != self.in_channels[i]:
                raise ValueError(
                    f'FaPNPixelDecoder: feats[{i}] has {x.shape[1]} channels,'
                    f' expected in_channels[{i}]={self.in_channels[i]}')

    def _encode(self, top: Tensor, batch_img_metas: List[dict]) -> Tensor:
        """Transformer encoder over the projected top level, with padded
        pixels masked out (as mmdet's TransformerEncoderPixelDecoder)."""
        b, _, h, w = top.shape
        input_h, input_w = batch_img_metas[0]['batch_input_shape']
        padding_mask = top.new_ones((b, input_h, input_w))
        for i, meta in enumerate(batch_img_metas):
            img_h, img_w = meta['img_shape'][:2]
            padding_mask[i, :img_h, :img_w] = 0
        padding_mask = F.interpolate(
            padding_mask.unsqueeze(1), size=(h, w),
            mode='nearest').to(torch.bool).squeeze(1)
        pos_embed = self.positional_encoding(padding_mask)
        query = self.input_proj(top).flatten(2).permute(0, 2, 1)
        memory = self.encoder(
            query=query,
            query_pos=pos_embed.flatten(2).permute(0, 2, 1),
            key_padding_mask=padding_mask.flatten(1))
        return memory.permute(0, 2, 1).reshape(b, self.feat_channels, h, w)

    def forward(self, feats: Sequence[Tensor],
                batch_img_metas: Optional[List[dict]] = None
                ) -> Tuple[Tensor, Tensor]:
        """
        Args:
            feats (list[Tensor]): backbone levels, finest first.
            batch_img_metas (list[dict]): image metas (``batch_input_shape``,
                ``img_shape``); used only by the encoder's padding mask.

        Returns:
            tuple[Tensor, Tensor]: ``mask_feature`` (B, out_channels, H_0,
            W_0) and ``memory`` (B, feat_channels, H_-1, W_-1).
        """
        self._check_inputs(feats)
        top = feats[-1]
        if self.encoder is None:
            memory = self.input_proj(top)
            y = self.last_feat_conv(top)
        else:
            if not batch_img_metas:
                raise ValueError('FaPNPixelDecoder: the transformer encoder '
                                 'needs batch_img_metas for its padding mask, '
                                 f'got {batch_img_metas!r}')
            memory = self._encode(top, batch_img_metas)
            y = self.last_feat_conv(memory)
        for i in range(self.num_inputs - 2, -1, -1):
            lat = self.lateral_convs[i](feats[i])
            # the top-down path carries the output conv's result (MaskFormer)
            y = self.output_convs[i](self.align_modules[i](lat, y))
        return self.mask_feature(y), memory

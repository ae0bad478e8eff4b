"""Real-time FaPN decode head (FaPN supplement, section 2)."""
import warnings
from typing import List, Sequence

import torch
from mmcv.cnn import ConvModule
from mmengine.model import ModuleList
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from torch import Tensor, nn

from mmfapn.models.layers import FeatureAlignModule, FeatureSelectionModule
from mmfapn.models.utils import resize_to
from mmfapn.registry import register_model

_FUSIONS = ('concat', 'sum')


@register_model
class RealtimeFaPNHead(BaseDecodeHead):
    """The real-time FaPN head: a light FaPN on C3..C5 predicting at stride 8.

    The supplement of Huang et al. (ICCV 2021) describes it for ResNet-18/34
    (no official code exists).  With ``L_i`` the lateral of ``C_i`` and the
    coarsest level first::

        P_5 = L_5(C_5)
        for i = 5 .. 4:
            ref = L_{i-1}(C_{i-1})                    # -> fpn_channels
            up  = nearest(P_i, size=ref.shape[-2:])   # x2 (any size)
            al  = FAM(ref, P_i)       if use_fam else up  # FAM: no + ref
            P_{i-1} = conv1x1(cat[al, ref])  if fusion == 'concat'
                      al + ref               if fusion == 'sum'
        logits = conv_seg(conv3x3(P_3))               # stride 8

    The laterals are FSMs (:class:`FeatureSelectionModule`) with ``use_fsm``
    and plain 1x1 convs otherwise; the aligner is the shared
    :class:`FeatureAlignModule` (8 deformable groups, nearest upsampling)
    with ``residual=False``: it returns the aligned map, which the head
    fuses with ``ref`` itself.
    ``use_fam=False, use_fsm=False, fusion='sum'`` is the supplement's FPN
    baseline row; each switch adds one row of its Table 1.

    Details the supplement leaves open, decided here:

    * Laterals (1x1 conv with bias, or FSM) have no norm or activation, as
      the laterals and FSMs of the released FaPN; the ``sum`` fusion has no
      conv (FAM's own ``align + lateral``), the ``concat`` fusion is a
      1x1 ``ConvModule`` (``2 * fpn_channels -> fpn_channels``) with the
      head's norm and activation.
    * The prediction layer is a 3x3 ``ConvModule`` (``fpn_channels ->
      channels``, norm + activation) followed by mmseg's ``conv_seg``
      (dropout, 1x1 conv to the classes).
    * The odd-size rule: the coarser map is upsampled to the lateral's size
      (nearest), which is exactly x2 for even sizes.

    With ``fpn_channels=128`` and ``channels=64`` these choices put the
    ResNet-18 Cityscapes model (19 classes) at 11.37M / 12.23M / 12.57M /
    12.64M parameters for the four rows (FPN, +FAM, +FAM+FSM, +concat;
    supplement: 11.4M, 12.2M, 12.6M, 12.6M), and at 768x1536 the MACs
    without the deformable conv itself land on the supplement's FLOPs
    column (``docs/model_families.md``).  A 3x3 prediction conv of 128
    channels, or none, would miss the table by more than 0.1M.

    Args:
        in_channels (list[int]): channels of the selected backbone levels,
            finest first (C3, C4, C5 of ResNet-18/34: 128, 256, 512).
        channels (int): channels of the prediction conv (input of
            ``conv_seg``). Default 64 (set it in configs).
        fpn_channels (int): width of the pyramid P3..P5. Default 128.
        use_fam (bool): align the upsampled map with a FAM. Default True.
        use_fsm (bool): FSM laterals instead of 1x1 convs. Default True.
        fusion (str): ``'concat'`` or ``'sum'``. Default ``'concat'``.
        deform_groups (int): deformable groups of each FAM. Default 8.
        dcn_impl (str): deformable conv implementation, see
            :func:`mmfapn.ops.modulated_deform_conv2d`. Default 'auto'.
        **kwargs: :class:`BaseDecodeHead` arguments (``num_classes``,
            ``in_index``, ``norm_cfg``, ``act_cfg``, ``dropout_ratio``,
            ``loss_decode``, ...). ``input_transform`` must be
            ``'multiple_select'`` (the default here).

    Shapes:
        inputs: the backbone outputs; the levels picked by ``in_index`` are
        (N, in_channels[i], H_i, W_i) with H_i = ceil(H_{i-1} / 2) (any
        sizes, odd ones included); output: (N, num_classes, H_0, W_0), the
        finest level's size (stride 8 for ResNet C3).  mmseg's segmentor
        upsamples it to the input size (bilinear) in ``predict`` and in the
        loss.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 channels: int = 64,
                 *,
                 fpn_channels: int = 128,
                 use_fam: bool = True,
                 use_fsm: bool = True,
                 fusion: str = 'concat',
                 deform_groups: int = 8,
                 dcn_impl: str = 'auto',
                 **kwargs) -> None:
        kwargs.setdefault('input_transform', 'multiple_select')
        if kwargs['input_transform'] != 'multiple_select':
            raise ValueError(
                'RealtimeFaPNHead fuses several levels: input_transform '
                "must be 'multiple_select', got "
                f"{kwargs['input_transform']!r}")
        if not isinstance(in_channels, (list, tuple)) or len(in_channels) < 2:
            raise ValueError('RealtimeFaPNHead needs the channels of at '
                             'least two levels (finest first), got '
                             f'{in_channels!r}')
        kwargs.setdefault('in_index', list(range(len(in_channels))))
        if fusion not in _FUSIONS:
            raise ValueError(
                f'RealtimeFaPNHead: fusion must be one of {_FUSIONS}, got '
                f'{fusion!r}')
        if not isinstance(fpn_channels, int) or fpn_channels < 1:
            raise ValueError('RealtimeFaPNHead: fpn_channels must be a '
                             f'positive int, got {fpn_channels!r}')
        super().__init__(in_channels, channels, **kwargs)
        self.fpn_channels = fpn_channels
        self.upsample_cfg = dict(mode='nearest')
        self.use_fam = use_fam
        self.use_fsm = use_fsm
        self.fusion = fusion

        self.laterals = ModuleList(
            self._lateral(c) for c in self.in_channels)
        # One aligner and one fusion conv per top-down step (finest first).
        # mmengine's ModuleList: its init_weights reaches the FSMs/FAMs, which
        # restore their released init (zero offsets) after a parent init_cfg.
        num_steps = len(self.in_channels) - 1
        self.fams = ModuleList(
            FeatureAlignModule(
                fpn_channels,
                deform_groups=deform_groups,
                upsample_cfg=self.upsample_cfg,
                residual=False,
                dcn_impl=dcn_impl) for _ in range(num_steps)
        ) if use_fam else None
        self.fusion_convs = ModuleList(
            ConvModule(
                2 * fpn_channels,
                fpn_channels,
                1,
                conv_cfg=self.conv_cfg,
                norm_cfg=self.norm_cfg,
                act_cfg=self.act_cfg) for _ in range(num_steps)
        ) if fusion == 'concat' else None
        self.pred_conv = ConvModule(
            fpn_channels,
            channels,
            3,
            padding=1,
            conv_cfg=self.conv_cfg,
            norm_cfg=self.norm_cfg,
            act_cfg=self.act_cfg)

    def _lateral(self, in_channels: int) -> nn.Module:
        if self.use_fsm:
            return FeatureSelectionModule(in_channels, self.fpn_channels)
        return ConvModule(
            in_channels,
            self.fpn_channels,
            1,
            conv_cfg=self.conv_cfg,
            norm_cfg=None,
            act_cfg=None)

    def _check_inputs(self, feats: Sequence[Tensor]) -> None:
        for level, (feat, expected) in enumerate(zip(feats,
                                                     self.in_channels)):
            if feat.dim() != 4 or feat.shape[1] != expected:
                raise ValueError(
                    f'RealtimeFaPNHead: input level {level} (in_index '
                    f'{self.in_index[level]}) must be (N, {expected}, H, W), '
                    f'got shape {tuple(feat.shape)}')

    def fuse(self, step: int, ref: Tensor, coarse: Tensor) -> Tensor:
        """One top-down step: ``P_{i-1}`` from the lateral ``ref`` and the
        coarser ``P_i`` (``step`` indexes the finer level)."""
        if self.use_fam:
            aligned = self.fams[step](ref, coarse)
        else:
            aligned = resize_to(coarse, ref.shape[-2:], self.upsample_cfg)
        if self.fusion == 'concat':
            return self.fusion_convs[step](torch.cat([aligned, ref], 1))
        return aligned + ref

    def pyramid(self, inputs: List[Tensor]) -> Tensor:
        """P3 (the finest fused map), (N, fpn_channels, H_0, W_0)."""
        feats = self._transform_inputs(inputs)
        self._check_inputs(feats)
        out = self.laterals[-1](feats[-1])
        for step in range(len(feats) - 2, -1, -1):
            out = self.fuse(step, self.laterals[step](feats[step]), out)
        return out

    def forward(self, inputs: List[Tensor]) -> Tensor:
        return self.cls_seg(self.pred_conv(self.pyramid(inputs)))


@register_model
class FaPNHead(RealtimeFaPNHead):
    """Deprecated name of :class:`RealtimeFaPNHead` (it read like the
    ``FaPN`` neck), kept so that existing configs and checkpoints still
    build and load (same arguments, same state-dict keys).  Warns once per
    process when built; write ``type='RealtimeFaPNHead'`` instead."""

    _warned = False

    def __init__(self, *args, **kwargs) -> None:
        if not FaPNHead._warned:
            FaPNHead._warned = True
            warnings.warn(
                "mmfapn: decode head type 'FaPNHead' is deprecated; use "
                "'RealtimeFaPNHead' (same arguments and weights)",
                FutureWarning, stacklevel=2)
        super().__init__(*args, **kwargs)

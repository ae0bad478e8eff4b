"""FaPN neck: the Feature-aligned Pyramid Network of Huang et al., ICCV 2021."""
import logging
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.model.weight_init import caffe2_xavier_init
from torch import Tensor, nn

from mmfapn.models.layers import (ALIGNERS, FeatureSelectionModule,
                                   build_aligner)
from mmfapn.models.utils import model_registry_of, normalize_upsample_cfg
from mmfapn.registry import available_model_registries, register_model

_EXTRA_SOURCES = ('on_input', 'on_lateral', 'on_output')
# ablation switches (FaPN Table 1, AlignSeg): see the FaPN docstring
LATERALS = ('fsm', 'se', 'conv')
ALIGNS = tuple(ALIGNERS)


def _build_submodule(cfg: dict) -> nn.Module:
    """Build ``cfg`` from whichever toolbox registry (mmdet/mmseg) knows its
    type, independent of the current default scope."""
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise TypeError(f'FaPN: context_cfg must be a dict with a type, got '
                        f'{cfg!r}')
    if not isinstance(cfg['type'], str):  # a class: any registry builds it
        return available_model_registries()[0].build(cfg)
    return model_registry_of(cfg['type'], 'FaPN: context_cfg type').build(cfg)


@register_model
class FaPN(BaseModule):
    """Feature-aligned Pyramid Network, exactly as the released model.

    A drop-in replacement for mmdet's ``FPN``: it takes the same arguments,
    so ``neck=dict(type='FaPN')`` merged onto a stock FPN config works.  For
    the used backbone levels ``C_s .. C_e`` (``s = start_level``)::

        prev = lateral_e(C_e)                       # bare 1x1 conv, bias
        P_e  = prev                                 # no FSM/FAM/3x3 on top
        for i = e-1 .. s:
            prev = FAM_i(FSM_i(C_i), prev)          # align, then sum
            P_i  = conv3x3_i(prev)                  # output conv, bias

    The top-down path carries ``prev`` (before the output conv).  Extra
    levels come from max-pooling the top output (kernel 1, stride 2) or, with
    ``add_extra_convs``, from stride-2 3x3 convs as in mmdet's FPN.

    Differences from the paper's text, following the released code: the top
    level has no FSM, FAM or output conv, and its 1x1 lateral keeps
    PyTorch's default init.  Every other conv uses Caffe2Xavier, the MDCN
    mmcv's default, and the offset/mask convs start at zero (see
    :meth:`init_weights`).  With ResNet-50 channels, ``out_channels=256`` and
    ``deform_groups=8`` the neck has 7,786,888 parameters (FPN: 3,344,384).

    Ablation switches (FaPN Table 1 and AlignSeg; the defaults are FaPN as
    released).  ``lateral`` picks the lateral of every level but the top:

    * ``'fsm'``: :class:`FeatureSelectionModule` (FaPN);
    * ``'se'``: the FSM without its ``x +`` skip, an SE block then the 1x1
      projection (the paper's "FAM + SE" row; same parameters as FSM);
    * ``'conv'``: a plain 1x1 conv with bias (FPN's lateral).

    ``align`` picks the aligner that fuses ``lat`` (the lateral) with
    ``prev``, ``prev = aligner(lat, prev)`` (one per level, in
    ``align_modules``; the names are
    :data:`~mmfapn.models.layers.ALIGNERS`)::

        'fam'              FAM(lat, prev)             FaPN
        'fam_after_fusion' FAM1(lat + up(prev))       Table 1 "FAM†"
        'flow'             AlignFA(lat, prev)         AlignSeg §3.2
        'deconv'           lat + deconv2x(prev)       Table 1 "deconv"
        'none'             lat + up(prev)             FPN

    ``up`` is the ``upsample_cfg`` interpolation; ``FAM1`` is the FAM in
    its one-input mode (offsets from the fused map itself: no 1x1 offset
    conv, no residual, :class:`FeatureAlignAfterFusion`); AlignFA warps
    both inputs with zero-initialised flows (:class:`AlignFA`); deconv is a
    bilinear-initialised 4x4 stride-2 transposed conv
    (:class:`DeconvFusion`); 'none' is :class:`SumFusion` (no parameters).
    Any other aligner (a :class:`~mmfapn.models.layers.BaseAligner`
    subclass registered in ``MODELS``) is chosen by
    ``align_cfg=dict(type='MyAligner', ...)``. ``top_output_conv=True`` adds
    FPN's 3x3 output conv on the top level, ``extra_output_convs=k`` stacks
    k more 3x3 convs after every level's output (the "FPN + extra 3x3 conv"
    row), and ``context_cfg`` inserts a context module such as
    :class:`AlignCM` on the top backbone level before its lateral. With
    ``lateral='conv'``, ``align='none'``, ``top_output_conv=True`` and
    nearest upsampling the neck is mmdet's/mmseg's FPN (same keys, same
    outputs). The parameter count of each ablation row is in
    ``docs/user_guides/ablations.md``.

    Args:
        in_channels (list[int]): channels of each backbone level.
        out_channels (int): channels of every output level.
        num_outs (int): number of output levels.
        start_level (int): first backbone level used. Default 0.
        end_level (int): last backbone level used (inclusive); -1 means the
            last. Default -1.
        add_extra_convs (bool | str): False: extra levels by max-pool.
            True / 'on_input' / 'on_lateral' / 'on_output': 3x3 stride-2
            convs on the top input, top lateral or top output (the top
            lateral *is* the top output in FaPN). Default False.
        relu_before_extra_convs (bool): ReLU before the 2nd+ extra conv.
        no_norm_on_lateral (bool): no norm on the laterals (FSMs and top).
        conv_cfg (dict, optional): conv config of all plain convs.
        norm_cfg (dict, optional): norm of laterals, offset fusion, output
            and extra convs. None as released.
        act_cfg (dict, optional): activation of output and extra convs.
            None as released.
        upsample_cfg (dict): interpolation of the top-down path (size is
            always the lateral's). Default bilinear, align_corners=False as
            released (mmdet's FPN uses nearest).
        deform_groups (int): deformable groups of each FAM. Default 8.
        dcn_impl (str): deformable conv implementation ('auto', 'mmcv',
            'torch'), see :func:`mmfapn.ops.modulated_deform_conv2d`.
        lateral (str): 'fsm' (default), 'se' or 'conv', see above.
        align (str): 'fam' (default), 'fam_after_fusion', 'flow', 'deconv'
            or 'none', see above.
        align_cfg (dict, optional): keyword arguments of the aligner of
            every level, e.g. ``dict(norm_cfg=dict(type='SyncBN'))`` for
            AlignFA's flow heads; they override the neck settings the
            aligner shares (its ``shared_args``: ``upsample_cfg``,
            ``conv_cfg``, ``norm_cfg``, ``deform_groups``, ``dcn_impl``).
            With ``type``, a registered aligner class that replaces
            ``align``.
        top_output_conv (bool): a 3x3 output conv on the top level too, as
            FPN (False as released).
        extra_output_convs (int): 3x3 convs (conv/norm/act configs of the
            output convs) stacked after every used level's output. Default 0.
        context_cfg (dict, optional): a module applied to the top used
            backbone level before its lateral (e.g. ``dict(type='AlignCM',
            in_channels=2048, channels=256)``); it must expose
            ``out_channels``, which becomes the top lateral's input.
        check_finite (bool, optional): raise one clear error when an input
            level holds NaN/Inf (it would otherwise flow through the
            deformable conv's sampling).  Reading the values is a host
            synchronisation on a GPU, so None (default) checks CPU inputs
            only; True checks on every device, False never.  Never under
            ``torch.compile`` or tracing (a data-dependent branch).
        init_cfg (dict | list[dict], optional): extra mmengine init applied
            by :meth:`init_weights`; None keeps the released init.

    Shapes:
        inputs: tuple of (N, in_channels[i], H_i, W_i); outputs: tuple of
        ``num_outs`` tensors (N, out_channels, H_i, W_i) for the used levels
        (sizes preserved, odd sizes included), then the extra levels.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 out_channels: int,
                 num_outs: int,
                 start_level: int = 0,
                 end_level: int = -1,
                 add_extra_convs: Union[bool, str] = False,
                 relu_before_extra_convs: bool = False,
                 no_norm_on_lateral: bool = False,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: Optional[dict] = None,
                 act_cfg: Optional[dict] = None,
                 upsample_cfg: Optional[dict] = None,
                 deform_groups: int = 8,
                 dcn_impl: str = 'auto',
                 lateral: str = 'fsm',
                 align: str = 'fam',
                 align_cfg: Optional[dict] = None,
                 top_output_conv: bool = False,
                 extra_output_convs: int = 0,
                 context_cfg: Optional[dict] = None,
                 check_finite: Optional[bool] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if check_finite not in (None, True, False):
            raise ValueError('FaPN: check_finite must be None, True or '
                             f'False, got {check_finite!r}')
        self.check_finite = check_finite
        if lateral not in LATERALS:
            raise ValueError(f'FaPN: unknown lateral={lateral!r}; expected '
                             f'one of {LATERALS}')
        if align not in ALIGNS:
            raise ValueError(f'FaPN: unknown align={align!r}; expected one '
                             f'of {ALIGNS}')
        if align_cfg is not None and not isinstance(align_cfg, dict):
            raise ValueError(f'FaPN: align_cfg must be a dict, got '
                             f'{align_cfg!r}')
        # align_cfg's type (a registered aligner) replaces the switch
        align_cfg = dict(align_cfg or {})
        align = align_cfg.setdefault('type', align)
        if not isinstance(extra_output_convs, int) or isinstance(
                extra_output_convs, bool) or extra_output_convs < 0:
            raise ValueError('FaPN: extra_output_convs must be an int >= 0, '
                             f'got {extra_output_convs!r}')
        self.lateral = lateral
        self.align = align
        self.top_output_conv = bool(top_output_conv)
        self.num_extra_output_convs = extra_output_convs
        self.upsample_cfg = normalize_upsample_cfg(upsample_cfg, 'FaPN')
        if not isinstance(in_channels, (list, tuple)) or not in_channels or \
                not all(isinstance(c, int) and c > 0 for c in in_channels):
            raise TypeError('FaPN: in_channels must be a non-empty list of '
                            f'positive ints, got {in_channels!r}')
        self.in_channels = list(in_channels)
        self.out_channels = out_channels
        self.num_ins = len(in_channels)
        self.num_outs = num_outs
        self.relu_before_extra_convs = relu_before_extra_convs
        self.no_norm_on_lateral = no_norm_on_lateral

        if not 0 <= start_level < self.num_ins:
            raise ValueError(f'FaPN: start_level={start_level} is out of '
                             f'range for {self.num_ins} input levels')
        if end_level == -1 or end_level == self.num_ins - 1:
            self.backbone_end_level = self.num_ins
            used = self.num_ins - start_level
            if num_outs < used:
                raise ValueError(
                    f'FaPN: num_outs={num_outs} is smaller than the number '
                    f'of used backbone levels ({used}: levels '
                    f'{start_level}..{self.num_ins - 1})')
        else:
            if not start_level <= end_level < self.num_ins:
                raise ValueError(f'FaPN: end_level={end_level} must be in '
                                 f'[start_level={start_level}, '
                                 f'{self.num_ins - 1}] or -1')
            self.backbone_end_level = end_level + 1
            if num_outs != end_level - start_level + 1:
                raise ValueError(
                    f'FaPN: with end_level={end_level} no extra level is '
                    f'allowed, so num_outs must be {end_level - start_level + 1}'
                    f', got {num_outs}')
        self.start_level = start_level
        self.end_level = end_level

        if isinstance(add_extra_convs, str):
            if add_extra_convs not in _EXTRA_SOURCES:
                raise ValueError(
                    f'FaPN: unknown add_extra_convs={add_extra_convs!r}; '
                    f'expected a bool or one of {_EXTRA_SOURCES}')
        elif isinstance(add_extra_convs, bool):
            add_extra_convs = 'on_input' if add_extra_convs else False
        else:
            raise TypeError('FaPN: add_extra_convs must be a bool or str, '
                            f'got {add_extra_convs!r}')
        self.add_extra_convs = add_extra_convs

        lateral_norm = None if no_norm_on_lateral else norm_cfg
        used_levels = range(self.start_level, self.backbone_end_level)
        top = self.backbone_end_level - 1
        self.context = None
        top_in_channels = in_channels[top]
        if context_cfg is not None:
            self.context = _build_submodule(context_cfg)
            top_in_channels = getattr(self.context, 'out_channels', None)
            if not isinstance(top_in_channels, int):
                raise TypeError(
                    'FaPN: the context module must expose an int '
                    f'out_channels, got {type(self.context).__name__}')

        def output_conv() -> ConvModule:
            return ConvModule(
                out_channels,
                out_channels,
                3,
                padding=1,
                conv_cfg=conv_cfg,
                norm_cfg=norm_cfg,
                act_cfg=act_cfg,
                inplace=False)

        # lateral_convs[j] for used level start_level + j: FSMs (or the
        # ablation laterals), then the bare top lateral; align_modules exist
        # for all but the top, fpn_convs too unless top_output_conv appends
        # the top one.
        shared = dict(
            upsample_cfg=self.upsample_cfg,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            deform_groups=deform_groups,
            dcn_impl=dcn_impl)
        self.lateral_convs = nn.ModuleList()
        self.align_modules = nn.ModuleList()
        self.fpn_convs = nn.ModuleList()
        for i in used_levels:
            if i == top:
                self.lateral_convs.append(
                    ConvModule(
                        top_in_channels,
                        out_channels,
                        1,
                        conv_cfg=conv_cfg,
                        norm_cfg=lateral_norm,
                        act_cfg=None,
                        inplace=False))
                if self.top_output_conv:
                    self.fpn_convs.append(output_conv())
                continue
            if lateral == 'conv':
                self.lateral_convs.append(
                    ConvModule(
                        in_channels[i],
                        out_channels,
                        1,
                        conv_cfg=conv_cfg,
                        norm_cfg=lateral_norm,
                        act_cfg=None,
                        inplace=False))
            else:
                self.lateral_convs.append(
                    FeatureSelectionModule(
                        in_channels[i],
                        out_channels,
                        skip=lateral == 'fsm',
                        conv_cfg=conv_cfg,
                        norm_cfg=lateral_norm))
            self.align_modules.append(
                build_aligner(align_cfg, out_channels, shared))
            self.fpn_convs.append(output_conv())
        self.extra_output_convs = nn.ModuleList()
        if extra_output_convs:
            for _ in used_levels:
                self.extra_output_convs.append(
                    nn.Sequential(*[
                        output_conv() for _ in range(extra_output_convs)
                    ]))

        self.extra_convs = nn.ModuleList()
        extra_levels = num_outs - self.backbone_end_level + self.start_level
        if self.add_extra_convs and extra_levels >= 1:
            for k in range(extra_levels):
                in_c = in_channels[top] if (
                    k == 0 and self.add_extra_convs == 'on_input') \
                    else out_channels
                self.extra_convs.append(
                    ConvModule(
                        in_c,
                        out_channels,
                        3,
                        stride=2,
                        padding=1,
                        conv_cfg=conv_cfg,
                        norm_cfg=norm_cfg,
                        act_cfg=act_cfg,
                        inplace=False))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The released initialisation (see class docstring)."""
        # The top lateral keeps PyTorch's default init (ConvModule replaced
        # it with kaiming at construction).
        self.lateral_convs[-1].conv.reset_parameters()
        for m in self.lateral_convs[:-1]:
            if isinstance(m, FeatureSelectionModule):
                m.reset_parameters()
            else:  # lateral='conv': detectron2's FPN init
                caffe2_xavier_init(m.conv)
        for m in self.align_modules:
            m.reset_parameters()
        extra_out = [c for seq in self.extra_output_convs for c in seq]
        for m in list(self.fpn_convs) + list(self.extra_convs) + extra_out:
            caffe2_xavier_init(m.conv)

    def init_weights(self) -> None:
        """Apply ``init_cfg`` (if any), then re-zero every offset/mask conv.

        mmengine applies a parent's ``init_cfg`` (e.g. FPN's ``Xavier,
        layer='Conv2d'``) to every nested ``nn.Conv2d``, which would wipe the
        zero init of the offset/mask convs.
        """
        super().init_weights()
        # align_modules is a plain nn.ModuleList, so mmengine does not call
        # the aligners' own init_weights; the context module (a direct
        # child) gets its own call.
        for m in self.align_modules:
            m.init_offset()

    def _should_check_finite(self, x: Tensor) -> bool:
        if self.check_finite is False or torch.jit.is_tracing() or \
                torch.jit.is_scripting() or torch.compiler.is_compiling():
            return False
        return self.check_finite is True or x.device.type == 'cpu'

    def _check_inputs(self, inputs: Sequence[Tensor]) -> None:
        if not isinstance(inputs, (list, tuple)):
            raise TypeError('FaPN: inputs must be a tuple/list of tensors, '
                            f'got {type(inputs).__name__}')
        if len(inputs) != self.num_ins:
            raise ValueError(
                f'FaPN: expected {self.num_ins} input feature maps (one per '
                f'in_channels={self.in_channels}), got {len(inputs)}')
        for i in range(self.start_level, self.backbone_end_level):
            x = inputs[i]
            if not isinstance(x, Tensor) or x.dim() != 4:
                shape = tuple(x.shape) if isinstance(x, Tensor) else type(x)
                raise ValueError(f'FaPN: input level {i} must be a 4-D '
                                 f'(N, C, H, W) tensor, got {shape}')
            if x.shape[1] != self.in_channels[i]:
                raise ValueError(
                    f'FaPN: input level {i} has {x.shape[1]} channels, '
                    f'expected in_channels[{i}]={self.in_channels[i]}')
        # NaN/Inf would flow through the deformable conv's bilinear sampling
        # (or fail deep inside its kernel): name it here (see check_finite).
        if self._should_check_finite(inputs[self.start_level]):
            used = inputs[self.start_level:self.backbone_end_level]
            finite = torch.stack([x.isfinite().all() for x in used])
            if not bool(finite.all()):
                i = self.start_level + int((~finite).nonzero()[0, 0])
                x = inputs[i]
                raise ValueError(
                    f'FaPN: input level {i} (shape {tuple(x.shape)}) has '
                    f'{int(x.isnan().sum())} NaN and {int(x.isinf().sum())} '
                    'Inf values before the deformable conv; check the input '
                    'data and normalisation, or the loss for divergence')

    def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                              strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        """Load as usual, plus one line naming the first mismatched keys
        (e.g. a checkpoint saved with mmdet's FPN neck): an error under
        ``strict``, otherwise a warning (mmengine's loader always passes
        ``strict=True`` here and decides itself)."""
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)
        own = [prefix + k for k in self.state_dict()]
        given = [k for k in state_dict if k.startswith(prefix)]
        missing = [k for k in own if k not in state_dict
                   and not k.endswith('num_batches_tracked')]
        unexpected = sorted(set(given) - set(own))
        if not (missing or unexpected):
            return
        msg = (f'FaPN {prefix!r}: checkpoint keys do not match this neck: '
               f'{len(missing)} missing (first: {", ".join(missing[:3])}), '
               f'{len(unexpected)} unexpected (first: '
               f'{", ".join(unexpected[:3])})')
        if strict:
            error_msgs.append(msg)
        else:
            print_log(msg, logger='current', level=logging.WARNING)

    def forward(self, inputs: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        """Args: inputs: backbone features, one per ``in_channels``.

        Returns: tuple of ``num_outs`` feature maps, finest first.
        """
        self._check_inputs(inputs)
        feats = inputs[self.start_level:self.backbone_end_level]
        top_in = feats[-1] if self.context is None else \
            self.context(feats[-1])
        top_lateral = self.lateral_convs[-1](top_in)
        prev = top_lateral
        outs = [self.fpn_convs[-1](top_lateral)
                if self.top_output_conv else top_lateral]
        for j in range(len(feats) - 2, -1, -1):
            lat = self.lateral_convs[j](feats[j])
            prev = self.align_modules[j](lat, prev)
            outs.insert(0, self.fpn_convs[j](prev))
        if self.num_extra_output_convs:
            outs = [convs(o) for convs, o in zip(self.extra_output_convs,
                                                 outs)]

        extra = self.num_outs - len(outs)
        if extra > 0 and not self.add_extra_convs:
            for _ in range(extra):
                outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        elif extra > 0:
            if self.add_extra_convs == 'on_input':
                source = inputs[self.backbone_end_level - 1]
            elif self.add_extra_convs == 'on_lateral':
                source = top_lateral
            else:  # on_output (the top lateral unless top_output_conv)
                source = outs[-1]
            outs.append(self.extra_convs[0](source))
            for conv in self.extra_convs[1:]:
                x = F.relu(outs[-1]) if self.relu_before_extra_convs \
                    else outs[-1]
                outs.append(conv(x))
        return tuple(outs)

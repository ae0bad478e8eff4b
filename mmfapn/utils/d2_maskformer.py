"""Conversion rules for the two released MaskFormer + FaPN checkpoints.

ShihuaHuang95/FaPN-full released MaskFormer (detectron2) with FaPN's
``BasePixelFANDecoder``: Swin-L on ADE20K (the paper's 56.7 mIoU) and R-101
on COCO-Stuff-10K.  This module maps their state dicts onto mmseg's
``EncoderDecoder`` with ``SwinTransformer`` / ``ResNet``, mmseg's
``MaskFormerHead`` (mmdet's transformer decoder) and
:class:`~mmfapn.models.FaPNPixelDecoder`; :mod:`mmfapn.utils.d2_convert`
calls it and checks the result against the model of a config.

Key mapping, detectron2 -> mmseg (``k`` = 1..3 is res2..res4, ``j = k - 1``;
``pd`` = ``sem_seg_head.pixel_decoder``, ``pr`` = ``sem_seg_head.predictor``,
``dh`` = ``decode_head``)::

    Swin (MaskFormer's D2SwinTransformer names)
    backbone.patch_embed.proj.*       -> backbone.patch_embed.projection.*
    backbone.layers.{s}.blocks.{b}.attn.{qkv,proj,relative_position_*}
        -> backbone.stages.{s}.blocks.{b}.attn.w_msa.*
    backbone.layers.{s}.blocks.{b}.mlp.fc1 / fc2
        -> backbone.stages.{s}.blocks.{b}.ffn.layers.0.0 / ffn.layers.1
    backbone.layers.{s}.downsample.{reduction,norm}.*   (channels reordered)
        -> backbone.stages.{s}.downsample.{reduction,norm}.*
    backbone.norm{i}.*, blocks' norm1/norm2   -> the same names
    ResNet (torchvision style, detectron2 names without ``bottom_up``)
    backbone.stem.conv1.*, backbone.res{s}.{b}.{conv{k},shortcut}.*
        -> backbone.{conv1,bn1}, backbone.layer{s-1}.{b}.{conv,bn,downsample}
    BasePixelFANDecoder -> FaPNPixelDecoder
    pd.adapter_{k}.{weight,norm.*}   -> dh.pixel_decoder.lateral_convs.{j}
                                        .{conv.weight,gn.*}
    pd.align_{k}.offset.weight       -> ...align_modules.{j}.offset_fusion
                                        .conv.weight
    pd.align_{k}.offset.norm.*       -> dropped: the same GN as layer_{k}
    pd.align_{k}.dcpack_L2.{weight,bias}            -> ...dcn.*
    pd.align_{k}.dcpack_L2.conv_offset_mask.*       -> ...dcn.conv_offset.*
    pd.layer_{k}.{weight,norm.*}     -> ...output_convs.{j}.{conv.weight,gn.*}
    pd.layer_4.{weight,norm.*}       -> ...last_feat_conv.{conv.weight,gn.*}
    pd.mask_features.*               -> ...mask_feature.*
    TransformerPredictor -> MaskFormerHead
    pr.input_proj.*                  -> dh.pixel_decoder.input_proj.*
    pr.query_embed.weight            -> dh.query_embed.weight
    pr.class_embed.*                 -> dh.cls_embed.*
    pr.mask_embed.layers.{i}.*       -> dh.mask_embed.{2 i}.*
    pr.transformer.decoder.layers.{l}.self_attn.*
        -> dh.transformer_decoder.layers.{l}.self_attn.attn.*
    pr.transformer.decoder.layers.{l}.multihead_attn.*
        -> dh.transformer_decoder.layers.{l}.cross_attn.attn.*
    ....linear1 / linear2 / norm{n}  -> ....ffn.layers.0.0 / ffn.layers.1 /
                                        norms.{n-1}
    pr.transformer.decoder.norm.*    -> dh.transformer_decoder.post_norm.*

Facts behind the mapping:

* **Patch merging.**  Swin's ``PatchMerging`` concatenates the four
  neighbours of a 2x2 cell in the order (row, col) = (0,0), (1,0), (0,1),
  (1,1), i.e. channel ``(dh + 2 dw) * C + c``; mmseg's uses ``nn.Unfold``,
  whose channel is ``c * 4 + 2 dh + dw``.  The reduction weight's input
  columns and the LayerNorm before it are permuted accordingly
  (:func:`swin_merging_to_unfold_order`).
* **Shared GroupNorm.**  The release hands one ``GN`` instance to the 1x1
  offset conv of ``align_{k}`` and to the 3x3 conv ``layer_{k}``, so the
  checkpoint stores the same tensors under ``align_{k}.offset.norm.*`` and
  ``layer_{k}.norm.*``.  ``FaPNPixelDecoder(share_offset_norm=True)`` has
  that GN once (``output_convs.{j}.gn``); the converter checks that the two
  copies are equal (a report error otherwise) and drops the duplicate.
* **In-projections.**  detectron2's (DETR's) decoder layers use
  ``nn.MultiheadAttention``, and so do mmcv's ``MultiheadAttention``
  wrappers in mmdet's ``DetrTransformerDecoder`` (``.attn``): the packed
  ``in_proj_weight`` (q, k, v rows) copies as is, no split is needed.
* **"No object" class.**  ``class_embed`` has ``num_classes + 1`` outputs
  with "no object" last, as mmdet's ``cls_embed``: copied unchanged.
  ``criterion.empty_weight`` (the loss weight per class, 0.1 for "no
  object") is not a model weight: dropped, and checked against the config's
  ``loss_cls.class_weight``.
* **DCN offsets.**  ``conv_offset_mask`` (DCNv2, chunked into o1, o2,
  mask) has mmcv's ``conv_offset`` layout, as in the FaPN neck.
* ``relative_position_index`` is copied and must equal the buffer mmseg
  computes for the config's window size (a report error otherwise).
"""
import re
from typing import Callable, Dict, List, Mapping, Optional, Tuple, Union

import torch
from torch import Tensor

from .d2_convert import D2UnsupportedError, resnet_rules

#: Released MaskFormer + FaPN backbones -> the name used in reports/configs.
#: Swin variants by (embed dims, depths); ResNet by depth.
SWIN_VARIANTS = {
    (96, (2, 2, 6, 2)): 'swin-t',
    (96, (2, 2, 18, 2)): 'swin-s',
    (128, (2, 2, 18, 2)): 'swin-b',
    (192, (2, 2, 18, 2)): 'swin-l',
}
_RES4_BLOCKS_TO_DEPTH = {6: 50, 23: 101}

PD = r'sem_seg_head\.pixel_decoder\.'
PR = r'sem_seg_head\.predictor\.'
_WB = r'\.(weight|bias)'

Rule = Tuple['re.Pattern', Callable[['re.Match'], Optional[str]]]


def is_maskformer(keys) -> bool:
    """MaskFormer-family keys (a pixel decoder or a query predictor; Panoptic
    FPN's ``sem_seg_head.predictor`` is a plain conv)."""
    return any(k.startswith(('sem_seg_head.pixel_decoder.',
                             'sem_seg_head.predictor.query_embed',
                             'sem_seg_head.predictor.transformer'))
               for k in keys)


def detect_maskformer(d2_state: Mapping[str, Tensor]) -> Union[int, str]:
    """The backbone of a MaskFormer + FaPN state dict: a ResNet depth (int)
    or a Swin variant name ('swin-l', ...).  Raises
    :class:`D2UnsupportedError` for MaskFormer models without FaPN's
    decoder, with a transformer encoder, or other predictors/backbones."""
    keys = list(d2_state)

    def has(prefix):
        return any(k.startswith(prefix) for k in keys)

    if not has('sem_seg_head.pixel_decoder.align_1.'):
        found = sorted({
            k.split('.')[2]
            for k in keys if k.startswith('sem_seg_head.pixel_decoder.')
        })[:6]
        raise D2UnsupportedError(
            'unsupported MaskFormer checkpoint: the pixel decoder is not '
            "FaPN's BasePixelFANDecoder (no sem_seg_head.pixel_decoder."
            f'align_* keys; found {found})')
    if has('sem_seg_head.pixel_decoder.transformer.') or has(
            'sem_seg_head.predictor.transformer.encoder.layers.'):
        raise D2UnsupportedError(
            'unsupported MaskFormer checkpoint: it has a transformer encoder '
            '(the released FaPN models have ENC_LAYERS 0)')
    if not has('sem_seg_head.predictor.transformer.decoder.layers.0.') or \
            'sem_seg_head.predictor.class_embed.weight' not in d2_state:
        raise D2UnsupportedError(
            'unsupported MaskFormer checkpoint: the predictor is not '
            "MaskFormer's TransformerPredictor (no sem_seg_head.predictor."
            'transformer.decoder.layers.* / class_embed keys; Mask2Former '
            'is not supported)')
    if 'backbone.patch_embed.proj.weight' in d2_state:
        embed = d2_state['backbone.patch_embed.proj.weight'].shape[0]
        depths = []
        for s in range(8):
            blocks = {
                int(m.group(1))
                for m in (re.match(rf'backbone\.layers\.{s}\.blocks\.(\d+)\.',
                                   k) for k in keys) if m
            }
            if not blocks:
                break
            depths.append(max(blocks) + 1)
        name = SWIN_VARIANTS.get((embed, tuple(depths)))
        if name is None:
            raise D2UnsupportedError(
                f'unsupported Swin backbone: embed dims {embed}, depths '
                f'{depths} (known: {sorted(set(SWIN_VARIANTS.values()))})')
        return name
    if 'backbone.stem.conv1.weight' in d2_state:
        res4 = {
            int(m.group(1))
            for m in (re.match(r'backbone\.res4\.(\d+)\.', k) for k in keys)
            if m
        }
        n = max(res4) + 1 if res4 else 0
        if n not in _RES4_BLOCKS_TO_DEPTH:
            raise D2UnsupportedError(
                f'unsupported ResNet: res4 has {n} blocks (R-50 has 6, '
                'R-101 has 23)')
        return _RES4_BLOCKS_TO_DEPTH[n]
    raise D2UnsupportedError(
        'unsupported MaskFormer backbone: neither Swin (backbone.patch_embed.'
        f'proj.weight) nor ResNet (backbone.stem.conv1.weight); first keys '
        f'{keys[:3]}')


def arch_name(depth: Union[int, str]) -> str:
    """'R-101' for a ResNet depth, 'Swin-L' for 'swin-l'."""
    if isinstance(depth, int):
        return f'R-{depth}'
    family, _, size = depth.partition('-')
    return f'{family.title()}-{size.upper()}'


# --------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------
def _swin_rules() -> List[Rule]:
    r: List[Rule] = []

    def add(pattern, fn):
        r.append((re.compile(r'backbone\.' + pattern), fn))

    add(r'patch_embed\.proj' + _WB,
        lambda m: f'backbone.patch_embed.projection.{m[1]}')
    add(r'patch_embed\.norm' + _WB,
        lambda m: f'backbone.patch_embed.norm.{m[1]}')
    blk = r'layers\.(\d+)\.blocks\.(\d+)\.'

    def stage(m):
        return f'backbone.stages.{m[1]}.blocks.{m[2]}.'

    add(blk + r'(norm[12])' + _WB, lambda m: stage(m) + f'{m[3]}.{m[4]}')
    add(blk + r'attn\.(qkv|proj)' + _WB,
        lambda m: stage(m) + f'attn.w_msa.{m[3]}.{m[4]}')
    add(blk + r'attn\.(relative_position_bias_table|relative_position_index)',
        lambda m: stage(m) + f'attn.w_msa.{m[3]}')
    add(blk + r'mlp\.fc1' + _WB, lambda m: stage(m) + f'ffn.layers.0.0.{m[3]}')
    add(blk + r'mlp\.fc2' + _WB, lambda m: stage(m) + f'ffn.layers.1.{m[3]}')
    add(r'layers\.(\d+)\.downsample\.(reduction|norm)' + _WB,
        lambda m: f'backbone.stages.{m[1]}.downsample.{m[2]}.{m[3]}')
    add(r'norm(\d)' + _WB, lambda m: f'backbone.norm{m[1]}.{m[2]}')
    return r


def _head_rules(num_levels: int) -> List[Rule]:
    r: List[Rule] = []

    def add(pattern, fn):
        r.append((re.compile(pattern), fn))

    dec = 'decode_head.pixel_decoder.'
    top = num_levels
    add(PD + r'adapter_(\d)\.weight',
        lambda m: f'{dec}lateral_convs.{int(m[1]) - 1}.conv.weight')
    add(PD + r'adapter_(\d)\.norm' + _WB,
        lambda m: f'{dec}lateral_convs.{int(m[1]) - 1}.gn.{m[2]}')
    add(PD + r'align_(\d)\.offset\.weight',
        lambda m: f'{dec}align_modules.{int(m[1]) - 1}.offset_fusion.conv.'
        'weight')
    add(PD + r'align_(\d)\.dcpack_L2' + _WB,
        lambda m: f'{dec}align_modules.{int(m[1]) - 1}.dcn.{m[2]}')
    add(PD + r'align_(\d)\.dcpack_L2\.conv_offset_mask' + _WB,
        lambda m: f'{dec}align_modules.{int(m[1]) - 1}.dcn.conv_offset.'
        f'{m[2]}')

    def layer(m, param):
        k = int(m[1])
        if k == top:  # res5: 3x3 conv on the backbone's top level
            return f'{dec}last_feat_conv.{param}'
        return f'{dec}output_convs.{k - 1}.{param}'

    add(PD + r'layer_(\d)\.weight', lambda m: layer(m, 'conv.weight'))
    add(PD + r'layer_(\d)\.norm' + _WB, lambda m: layer(m, f'gn.{m[2]}'))
    add(PD + r'mask_features' + _WB, lambda m: f'{dec}mask_feature.{m[1]}')

    add(PR + r'input_proj' + _WB, lambda m: f'{dec}input_proj.{m[1]}')
    add(PR + r'query_embed\.weight',
        lambda m: 'decode_head.query_embed.weight')
    add(PR + r'class_embed' + _WB, lambda m: f'decode_head.cls_embed.{m[1]}')
    add(PR + r'mask_embed\.layers\.(\d)' + _WB,
        lambda m: f'decode_head.mask_embed.{2 * int(m[1])}.{m[2]}')
    tl = PR + r'transformer\.decoder\.layers\.(\d+)\.'

    def tgt(m):
        return f'decode_head.transformer_decoder.layers.{m[1]}.'

    attn = {'self_attn': 'self_attn', 'multihead_attn': 'cross_attn'}
    add(tl + r'(self_attn|multihead_attn)\.(in_proj_weight|in_proj_bias)',
        lambda m: tgt(m) + f'{attn[m[2]]}.attn.{m[3]}')
    add(tl + r'(self_attn|multihead_attn)\.out_proj' + _WB,
        lambda m: tgt(m) + f'{attn[m[2]]}.attn.out_proj.{m[3]}')
    add(tl + r'linear1' + _WB, lambda m: tgt(m) + f'ffn.layers.0.0.{m[2]}')
    add(tl + r'linear2' + _WB, lambda m: tgt(m) + f'ffn.layers.1.{m[2]}')
    add(tl + r'norm([1-3])' + _WB,
        lambda m: tgt(m) + f'norms.{int(m[2]) - 1}.{m[3]}')
    add(PR + r'transformer\.decoder\.norm' + _WB,
        lambda m: f'decode_head.transformer_decoder.post_norm.{m[1]}')
    return r


def maskformer_rules(depth: Union[int, str]) -> List[Rule]:
    """Ordered (pattern, target) rules of a MaskFormer + FaPN state dict."""
    backbone = resnet_rules(r'backbone\.') if isinstance(depth, int) \
        else _swin_rules()
    return backbone + _head_rules(num_levels=4)


# --------------------------------------------------------------------------
# Value transforms and drops
# --------------------------------------------------------------------------
def swin_merging_to_unfold_order(t: Tensor) -> Tensor:
    """Permute the 4C input channels of a Swin ``PatchMerging`` (reduction
    weight ``(C_out, 4C)`` or norm parameter ``(4C,)``) from the original
    concatenation order to ``nn.Unfold``'s (see the module docstring)."""
    c4 = t.shape[-1]
    if c4 % 4:
        raise ValueError(f'patch merging channels {c4} not divisible by 4')
    c = c4 // 4
    # original block index j = dh + 2 dw; unfold position p = 2 dh + dw
    orig_block = [0, 2, 1, 3]  # for p = 0..3
    index = torch.tensor([orig_block[p] * c + ch for ch in range(c)
                          for p in range(4)])
    return t.index_select(-1, index)


_MERGING = re.compile(
    r'backbone\.stages\.\d+\.downsample\.(reduction\.weight|norm\.'
    r'(weight|bias))')


def transform(target: str, value: Tensor) -> Tensor:
    """Value change for a target key (only Swin's patch merging)."""
    if _MERGING.fullmatch(target):
        return swin_merging_to_unfold_order(value)
    return value


_SHARED_GN = re.compile(PD + r'align_(\d)\.offset\.norm\.(weight|bias)')
EMPTY_WEIGHT = 'criterion.empty_weight'


def drop_reasons(d2_state: Mapping[str, Tensor]
                 ) -> Tuple[Dict[str, str], List[str]]:
    """Source keys dropped on purpose (key -> why) and the errors found
    checking them (the shared GN copies must be equal)."""
    dropped: Dict[str, str] = {}
    errors: List[str] = []
    for key, value in d2_state.items():
        m = _SHARED_GN.fullmatch(key)
        if m:
            twin = f'sem_seg_head.pixel_decoder.layer_{m[1]}.norm.{m[2]}'
            dropped[key] = (
                f'shared GroupNorm: the same GN instance as {twin} in the '
                'release, loaded once (FaPNPixelDecoder share_offset_norm)')
            other = d2_state.get(twin)
            if other is None or other.shape != value.shape or \
                    not torch.equal(other, value):
                errors.append(
                    f'{key} differs from {twin}: the release shares one GN '
                    'between the two convs, so the checkpoint should hold '
                    'equal tensors (FaPNPixelDecoder with share_offset_norm='
                    'True cannot represent two)')
        elif key == EMPTY_WEIGHT:
            dropped[key] = ('loss weights (no-object 0.1): the config\'s '
                            'loss_cls.class_weight, checked equal')
    return dropped, errors


def check_config(d2_state: Mapping[str, Tensor], cfg, model,
                 report) -> None:
    """Checks of the non-weight facts against the config: the loss class
    weights and the Swin relative position indices."""
    head = cfg.model.get('decode_head', {})
    weight = head.get('loss_cls', {}).get('class_weight') if head else None
    if EMPTY_WEIGHT in d2_state and weight is not None:
        got = d2_state[EMPTY_WEIGHT].double().flatten()
        want = torch.tensor(weight, dtype=torch.float64)
        if got.shape != want.shape or not torch.allclose(got, want):
            report.errors.append(
                f'{EMPTY_WEIGHT} ({got.numel()} classes, no-object '
                f'{got[-1].item():g}) != loss_cls.class_weight of the config '
                f'({want.numel()}, {want[-1].item():g})')
    target = model.state_dict()
    for src, dst in report.mapped.items():
        if dst.endswith('relative_position_index') and dst in target and \
                d2_state[src].shape == target[dst].shape and \
                not torch.equal(d2_state[src].to(target[dst].dtype),
                                target[dst]):
            report.errors.append(
                f'{src} differs from the index mmseg computes for the '
                'config\'s window size')

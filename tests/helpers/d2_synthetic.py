"""Synthetic detectron2-format state dicts of the released FaPN models.

The released checkpoints cannot be downloaded here, so the converter is
tested on state dicts with the same key names and shapes, written down from
the module structure of the official code (``detectron2/modeling/backbone/
fan.py`` and ``DCNv2/dcn_v2.py`` of EMI-Group/FaPN, detectron2's ResNet,
RPN, RoI, mask, PointRend and semantic heads) and the released yaml configs.
This description is independent of the conversion rules in
:mod:`mmfapn.utils.d2_convert`: it names detectron2's modules, not mmdet's.

For the two MaskFormer + FaPN releases the key/shape lists were taken from
the official models themselves (``tests/data/d2_keys/*.tsv``);
:func:`d2_state_dict_from_key_list` fills such a list with random values.
:func:`fapn_neck_to_d2` goes the other way for the neck: an mmfapn FaPN
state dict under the released names.

Test code, not part of the package: importable in the tests as
``d2_synthetic`` (``pythonpath = tests/helpers`` in setup.cfg's pytest
section).
"""
import re
from collections import OrderedDict
from typing import Mapping, Optional, Tuple

import torch
from torch import Tensor

from mmfapn.utils.d2_convert import (D2_PIXEL_MEAN, D2_PIXEL_STD,
                                     D2ConversionError)

_STAGE_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
_MODELS = ('faster_rcnn', 'mask_rcnn', 'point_rend', 'panoptic_fpn',
           'point_rend_semantic')


def _shapes(model: str, depth: int, num_classes: int, num_stuff: int,
            seg_classes: int,
            point_rend_layout: str) -> 'OrderedDict[str, Tuple[int, ...]]':
    shapes: 'OrderedDict[str, Tuple[int, ...]]' = OrderedDict()

    def frozen_bn(prefix: str, c: int) -> None:
        for p in ('weight', 'bias', 'running_mean', 'running_var'):
            shapes[f'{prefix}.norm.{p}'] = (c, )

    def conv(prefix: str, c_out: int, c_in: int, k: int, bias: bool,
             norm: Optional[str] = None) -> None:
        shapes[f'{prefix}.weight'] = (c_out, c_in, k, k)
        if bias:
            shapes[f'{prefix}.bias'] = (c_out, )
        if norm == 'FrozenBN':
            frozen_bn(prefix, c_out)
        elif norm == 'GN':
            shapes[f'{prefix}.norm.weight'] = (c_out, )
            shapes[f'{prefix}.norm.bias'] = (c_out, )

    # ResNet (MODEL.RESNETS: MSRA, STRIDE_IN_1X1, NORM FrozenBN, no bias)
    bu = 'backbone.bottom_up'
    conv(f'{bu}.stem.conv1', 64, 3, 7, False, 'FrozenBN')
    in_c = 64
    for i, n in enumerate(_STAGE_BLOCKS[depth]):
        out_c, mid = 256 * 2**i, 64 * 2**i
        for b in range(n):
            p = f'{bu}.res{i + 2}.{b}'
            if b == 0:
                conv(f'{p}.shortcut', out_c, in_c, 1, False, 'FrozenBN')
            conv(f'{p}.conv1', mid, in_c, 1, False, 'FrozenBN')
            conv(f'{p}.conv2', mid, mid, 3, False, 'FrozenBN')
            conv(f'{p}.conv3', out_c, mid, 1, False, 'FrozenBN')
            in_c = out_c

    # FAN (fan.py): FeatureAlign_V2 for res2..res4, plain 1x1 on res5
    out = 256
    for i, c in enumerate((256, 512, 1024)):
        s = i + 2
        fa = f'backbone.fan_align{s}'
        conv(f'{fa}.lateral_conv.conv_atten', c, c, 1, False)
        conv(f'{fa}.lateral_conv.conv', out, c, 1, False)
        conv(f'{fa}.offset', out, 2 * out, 1, False)
        conv(f'{fa}.dcpack_L2', out, out, 3, True)
        # dcn_v2.DCN: conv_offset_mask, dg * 3 * kh * kw outputs, 8 groups
        conv(f'{fa}.dcpack_L2.conv_offset_mask', 8 * 3 * 9, out, 3, True)
        conv(f'backbone.fpn_output{s}', out, out, 3, True)
    conv('backbone.fan_align5', out, 2048, 1, True)

    if model != 'point_rend_semantic':
        # StandardRPNHead, 3 anchors (one size, 3 ratios) per location
        rpn = 'proposal_generator.rpn_head'
        conv(f'{rpn}.conv', out, out, 3, True)
        conv(f'{rpn}.objectness_logits', 3, out, 1, True)
        conv(f'{rpn}.anchor_deltas', 3 * 4, out, 1, True)
        # FastRCNNConvFCHead (NUM_FC 2, FC_DIM 1024), FastRCNNOutputLayers
        shapes['roi_heads.box_head.fc1.weight'] = (1024, out * 7 * 7)
        shapes['roi_heads.box_head.fc1.bias'] = (1024, )
        shapes['roi_heads.box_head.fc2.weight'] = (1024, 1024)
        shapes['roi_heads.box_head.fc2.bias'] = (1024, )
        shapes['roi_heads.box_predictor.cls_score.weight'] = (
            num_classes + 1, 1024)
        shapes['roi_heads.box_predictor.cls_score.bias'] = (num_classes + 1, )
        shapes['roi_heads.box_predictor.bbox_pred.weight'] = (
            4 * num_classes, 1024)
        shapes['roi_heads.box_predictor.bbox_pred.bias'] = (4 * num_classes, )
    if model in ('mask_rcnn', 'panoptic_fpn'):
        # MaskRCNNConvUpsampleHead (NUM_CONV 4)
        mh = 'roi_heads.mask_head'
        for k in range(1, 5):
            conv(f'{mh}.mask_fcn{k}', out, out, 3, True)
        shapes[f'{mh}.deconv.weight'] = (out, out, 2, 2)  # ConvTranspose2d
        shapes[f'{mh}.deconv.bias'] = (out, )
        conv(f'{mh}.predictor', num_classes, out, 1, True)
    if model == 'point_rend':
        if point_rend_layout == 'v2':  # detectron2 >= v0.4
            coarse, point = 'roi_heads.mask_head.coarse_head', \
                'roi_heads.mask_head.point_head'
            fc = 'fc'
        else:  # before v0.4
            coarse, point = 'roi_heads.mask_coarse_head', \
                'roi_heads.mask_point_head'
            fc = 'coarse_mask_fc'
        # CoarseMaskHead: 14x14 RoI -> 2x2 stride-2 conv -> 2 fc -> 7x7
        conv(f'{coarse}.reduce_spatial_dim_conv', out, out, 2, True)
        shapes[f'{coarse}.{fc}1.weight'] = (1024, out * 7 * 7)
        shapes[f'{coarse}.{fc}1.bias'] = (1024, )
        shapes[f'{coarse}.{fc}2.weight'] = (1024, 1024)
        shapes[f'{coarse}.{fc}2.bias'] = (1024, )
        shapes[f'{coarse}.prediction.weight'] = (num_classes * 7 * 7, 1024)
        shapes[f'{coarse}.prediction.bias'] = (num_classes * 7 * 7, )
        # StandardPointHead, COARSE_PRED_EACH_LAYER True (detectron2 default)
        c_in = out + num_classes
        for k in range(1, 4):
            shapes[f'{point}.fc{k}.weight'] = (256, c_in, 1)
            shapes[f'{point}.fc{k}.bias'] = (256, )
            c_in = 256 + num_classes
        shapes[f'{point}.predictor.weight'] = (num_classes, c_in, 1)
        shapes[f'{point}.predictor.bias'] = (num_classes, )

    def sem_seg_fpn_head(prefix: str, classes: int) -> None:
        # SemSegFPNHead: CONVS_DIM 128, NORM GN, COMMON_STRIDE 4; each
        # level is a Sequential of (conv, upsample) pairs
        for s in (2, 3, 4, 5):
            for k in range(max(1, s - 2)):
                conv(f'{prefix}.p{s}.{2 * k}', 128, out if k == 0 else 128,
                     3, False, 'GN')
        conv(f'{prefix}.predictor', classes, 128, 1, True)

    if model == 'panoptic_fpn':
        sem_seg_fpn_head('sem_seg_head', num_stuff + 1)
    if model == 'point_rend_semantic':
        sem_seg_fpn_head('sem_seg_head.coarse_sem_seg_head', seg_classes)
        # Base-PointRend-Semantic-FAN.yaml: COARSE_PRED_EACH_LAYER False
        c_in = out + seg_classes
        for k in range(1, 4):
            shapes[f'sem_seg_head.point_head.fc{k}.weight'] = (256, c_in, 1)
            shapes[f'sem_seg_head.point_head.fc{k}.bias'] = (256, )
            c_in = 256
        shapes['sem_seg_head.point_head.predictor.weight'] = (seg_classes,
                                                              c_in, 1)
        shapes['sem_seg_head.point_head.predictor.bias'] = (seg_classes, )
    return shapes


def d2_fapn_state_dict(model: str = 'faster_rcnn',
                       depth: int = 50,
                       num_classes: int = 80,
                       num_stuff: int = 53,
                       seg_classes: int = 19,
                       point_rend_layout: str = 'v2',
                       with_buffers: bool = True,
                       seed: int = 0,
                       std: float = 0.02) -> 'OrderedDict[str, Tensor]':
    """A random state dict with the released detectron2 FaPN names/shapes.

    Args:
        model (str): 'faster_rcnn', 'mask_rcnn', 'point_rend' (instance),
            'panoptic_fpn' or 'point_rend_semantic' (Cityscapes).
        depth (int): ResNet depth, 50 or 101.
        num_classes (int): thing classes of the detectors (COCO: 80).
        num_stuff (int): stuff classes of Panoptic FPN (COCO: 53).
        seg_classes (int): classes of semantic PointRend (Cityscapes: 19).
        point_rend_layout (str): 'v2' (``roi_heads.mask_head.coarse_head``,
            detectron2 >= v0.4) or 'v1' (``roi_heads.mask_coarse_head``).
        with_buffers (bool): add the non-learned entries some detectron2
            versions save (``pixel_mean``/``pixel_std`` with the MSRA values,
            the RPN cell anchors), which the converter drops on purpose.
        seed (int): random seed.
        std (float): std of the random (uniform) weights; norm scales are
            near 1 and running variances in [0.5, 1.5], so the network stays
            well scaled.

    Returns:
        OrderedDict[str, Tensor]: float32 tensors.
    """
    if model not in _MODELS:
        raise ValueError(f'model must be one of {_MODELS}, got {model!r}')
    if depth not in _STAGE_BLOCKS:
        raise ValueError(f'depth must be 50 or 101, got {depth!r}')
    if point_rend_layout not in ('v1', 'v2'):
        raise ValueError("point_rend_layout must be 'v1' or 'v2', got "
                         f'{point_rend_layout!r}')
    g = torch.Generator().manual_seed(seed)
    state: 'OrderedDict[str, Tensor]' = OrderedDict()
    for key, shape in _shapes(model, depth, num_classes, num_stuff,
                              seg_classes, point_rend_layout).items():
        # uniform: as good as normal here and twice as fast to draw
        t = torch.empty(shape).uniform_(-1, 1, generator=g)
        if key.endswith('running_var'):
            t = t.abs_() + 0.5
        elif key.endswith('norm.weight'):
            t = t.mul_(0.1).add_(1)
        else:
            t = t.mul_(std * 3**0.5)
        state[key] = t
    if with_buffers:
        state['pixel_mean'] = torch.tensor(D2_PIXEL_MEAN).view(3, 1, 1)
        state['pixel_std'] = torch.tensor(D2_PIXEL_STD).view(3, 1, 1)
        if model != 'point_rend_semantic':
            for i, size in enumerate((32, 64, 128, 256, 512)):
                state['proposal_generator.anchor_generator.cell_anchors.'
                      f'{i}'] = _cell_anchors(size)
    return state


def _cell_anchors(size: float) -> Tensor:
    """detectron2's DefaultAnchorGenerator cell anchors for one size and
    aspect ratios (h / w) 0.5, 1, 2: (x0, y0, x1, y1) centred at 0."""
    rows = []
    for ratio in (0.5, 1.0, 2.0):
        w = (size * size / ratio)**0.5
        h = ratio * w
        rows.append([-w / 2, -h / 2, w / 2, h / 2])
    return torch.tensor(rows)



def swin_relative_position_index(window: int) -> Tensor:
    """Swin's relative position index for a ``window x window`` window:
    for tokens a, b (row-major), ``(dy + w - 1) * (2w - 1) + (dx + w - 1)``
    with ``(dy, dx) = pos(a) - pos(b)``, as in the original Swin code."""
    ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window),
                            indexing='ij')
    ys, xs = ys.flatten(), xs.flatten()
    dy = ys[:, None] - ys[None, :] + window - 1
    dx = xs[:, None] - xs[None, :] + window - 1
    return dy * (2 * window - 1) + dx


def read_key_list(path: str) -> 'OrderedDict[str, Tuple[int, ...]]':
    """Read a ``key<TAB>shape`` list (``#`` comments; shape ``AxBxC``, empty
    for a scalar), e.g. the released models' lists in ``tests/data``."""
    shapes: 'OrderedDict[str, Tuple[int, ...]]' = OrderedDict()
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip('\n')
            if not line.strip() or line.startswith('#'):
                continue
            key, _, shape = line.partition('\t')
            try:
                dims = tuple(int(d) for d in shape.split('x')) \
                    if shape.strip() else ()
            except ValueError:
                raise ValueError(f'{path}:{n}: bad shape {shape!r} for '
                                 f'{key!r} (expected e.g. 256x3x3x3)')
            if key in shapes:
                raise ValueError(f'{path}:{n}: duplicate key {key!r}')
            shapes[key] = dims
    return shapes


def d2_state_dict_from_key_list(path: str,
                                seed: int = 0,
                                std: float = 0.02
                                ) -> 'OrderedDict[str, Tensor]':
    """A random state dict with exactly the keys and shapes of a key list
    (:func:`read_key_list`) of a released model.

    Values are made plausible where the model relies on them: norm scales
    near 1, running variances in [0.5, 1.5], Swin's relative position
    indices the true ones (:func:`swin_relative_position_index`),
    MaskFormer's ``criterion.empty_weight`` ones with 0.1 for "no object",
    and the shared GroupNorm of MaskFormer + FaPN stored twice with the
    same values (``align_k.offset.norm.*`` = ``layer_k.norm.*``, as the
    release saves one GN instance under both names).  Everything else is
    uniform with standard deviation ``std``.
    """
    g = torch.Generator().manual_seed(seed)
    state: 'OrderedDict[str, Tensor]' = OrderedDict()
    shapes = read_key_list(path)
    for key, shape in shapes.items():
        if key.endswith('relative_position_index'):
            window = int(round(shape[0]**0.5))
            state[key] = swin_relative_position_index(window)
            continue
        if key == 'criterion.empty_weight':
            t = torch.ones(shape)
            t[-1] = 0.1
            state[key] = t
            continue
        t = torch.empty(shape).uniform_(-1, 1, generator=g)
        if key.endswith('running_var'):
            t = t.abs_() + 0.5
        elif re.search(r'norm\d*\.weight$', key):
            t = t.mul_(0.1).add_(1)
        else:
            t = t.mul_(std * 3**0.5)
        state[key] = t
    for key in state:
        m = re.fullmatch(
            r'(.*pixel_decoder\.)align_(\d)\.offset\.norm\.(weight|bias)', key)
        if m:
            state[key] = state[f'{m[1]}layer_{m[2]}.norm.{m[3]}']
    for key, t in state.items():
        assert tuple(t.shape) == shapes[key], key
    return state


# --------------------------------------------------------------------------
# mmfapn -> detectron2 names, for comparing with the official code
# --------------------------------------------------------------------------
def fapn_neck_to_d2(neck_state: Mapping[str, Tensor],
                    prefix: str = '',
                    stage0: int = 2) -> 'OrderedDict[str, Tensor]':
    """Rename an mmfapn :class:`~mmfapn.models.FaPN` state dict to the
    released detectron2 names (``backbone.fan_align*``,
    ``backbone.fpn_output*``), the inverse of the neck rules of
    :mod:`mmfapn.utils.d2_convert`.

    Args:
        neck_state: ``neck.state_dict()`` (or a model state dict with
            ``prefix='neck.'``).
        prefix (str): prefix of the neck keys in ``neck_state``.
        stage0 (int): detectron2 stage of the first level (2 for res2).
    """
    inv = [
        (r'lateral_convs\.(\d+)\.conv_atten\.conv\.weight',
         'fan_align{s}.lateral_conv.conv_atten.weight'),
        (r'lateral_convs\.(\d+)\.conv\.conv\.weight',
         'fan_align{s}.lateral_conv.conv.weight'),
        (r'lateral_convs\.(\d+)\.conv\.(weight|bias)', 'fan_align{s}.{p}'),
        (r'align_modules\.(\d+)\.offset_fusion\.conv\.weight',
         'fan_align{s}.offset.weight'),
        (r'align_modules\.(\d+)\.dcn\.(weight|bias)',
         'fan_align{s}.dcpack_L2.{p}'),
        (r'align_modules\.(\d+)\.dcn\.conv_offset\.(weight|bias)',
         'fan_align{s}.dcpack_L2.conv_offset_mask.{p}'),
        (r'fpn_convs\.(\d+)\.conv\.(weight|bias)', 'fpn_output{s}.{p}'),
    ]
    out = OrderedDict()
    for key, value in neck_state.items():
        if not key.startswith(prefix):
            continue
        k = key[len(prefix):]
        for pattern, template in inv:
            m = re.fullmatch(pattern, k)
            if m:
                p = m.group(2) if m.lastindex >= 2 else ''
                out['backbone.' + template.format(
                    s=int(m.group(1)) + stage0, p=p)] = value
                break
        else:
            raise D2ConversionError(
                f'neck key {key!r} has no detectron2 counterpart (norm '
                'layers and extra convs are not in the released FaPN)')
    return out

"""Convert the released detectron2 FaPN checkpoints to mmdet / mmseg models.

The authors released Faster R-CNN, Mask R-CNN, PointRend (instance and
Cityscapes semantic) and Panoptic FPN models trained with FaPN in
detectron2, and two MaskFormer + FaPN models (Swin-L ADE20K, R-101
COCO-Stuff-10K; their rules are in :mod:`mmfapn.utils.d2_maskformer`).
This module maps their state dicts onto the models of this repository's
``*_d2-weights.py`` configs, which reproduce detectron2's inference
setting.

Key mapping, detectron2 -> OpenMMLab (``s`` = stage 2..5, ``j = s - 2``)::

    backbone.bottom_up.stem.conv1.{weight,norm.*}
        -> backbone.{conv1.weight,bn1.*}
    backbone.bottom_up.res{s}.{b}.conv{k}.{weight,norm.*}
        -> backbone.layer{s-1}.{b}.{conv{k}.weight,bn{k}.*}
    backbone.bottom_up.res{s}.0.shortcut.{weight,norm.*}
        -> backbone.layer{s-1}.0.downsample.{0.weight,1.*}
    backbone.fan_align{s}.lateral_conv.{conv_atten,conv}.weight   (FSM)
        -> neck.lateral_convs.{j}.{conv_atten,conv}.conv.weight
    backbone.fan_align{s}.offset.weight
        -> neck.align_modules.{j}.offset_fusion.conv.weight
    backbone.fan_align{s}.dcpack_L2.{weight,bias}
        -> neck.align_modules.{j}.dcn.{weight,bias}
    backbone.fan_align{s}.dcpack_L2.conv_offset_mask.{weight,bias}
        -> neck.align_modules.{j}.dcn.conv_offset.{weight,bias}
    backbone.fpn_output{s}.{weight,bias} -> neck.fpn_convs.{j}.conv.*
    backbone.fan_align5.{weight,bias}    -> neck.lateral_convs.3.conv.*
    proposal_generator.rpn_head.{conv,objectness_logits,anchor_deltas}
        -> rpn_head.{rpn_conv,rpn_cls,rpn_reg}
    roi_heads.box_head.fc{1,2} -> roi_head.bbox_head.shared_fcs.{0,1}
    roi_heads.box_predictor.{cls_score,bbox_pred}
        -> roi_head.bbox_head.{fc_cls,fc_reg}
    roi_heads.mask_head.{mask_fcn{k},deconv,predictor}
        -> roi_head.mask_head.{convs.{k-1}.conv,upsample,conv_logits}
    PointRend instance, detectron2 >= v0.4 (older names in brackets):
    roi_heads.mask_head.coarse_head [roi_heads.mask_coarse_head]
        .{reduce_spatial_dim_conv,fc{k} [coarse_mask_fc{k}],prediction}
        -> roi_head.mask_head.{downsample_conv.conv,fcs.{k-1},fc_logits}
    roi_heads.mask_head.point_head [roi_heads.mask_point_head]
        .{fc{k},predictor} -> roi_head.point_head.{fcs.{k-1}.conv,fc_logits}
    Panoptic FPN semantic head (Sequential of conv, upsample pairs):
    sem_seg_head.p{s}.{2k}.{weight,norm.*}
        -> semantic_head.conv_upsample_layers.{j}.conv.{k}.{conv.weight,gn.*}
    sem_seg_head.predictor -> semantic_head.conv_logits (channels permuted)
    PointRend semantic (mmseg CascadeEncoderDecoder):
    sem_seg_head.coarse_sem_seg_head.p{s}.{i}.{weight,norm.*}
        -> decode_head.0.scale_heads.{j}.{i}.{conv.weight,gn.*}
    sem_seg_head.coarse_sem_seg_head.predictor -> decode_head.0.conv_seg
    sem_seg_head.point_head.{fc{k},predictor}
        -> decode_head.1.{fcs.{k-1}.conv,fc_seg}

Facts behind the mapping (from the released code and detectron2):

* The official DCNv2 ``conv_offset_mask`` output is chunked into (o1, o2,
  mask) thirds, ``offset = cat(o1, o2)``: the layout of mmcv's
  ``conv_offset`` (see :class:`mmfapn.ops.GuidedModulatedDeformConv2d`), so
  it is copied with no permutation.
* detectron2's MSRA ResNet puts the stride in the 1x1 conv (``style='caffe'``
  in mmdet/mmseg) and uses ``FrozenBatchNorm2d`` (eps 1e-5, the
  checkpoint stores weight, bias, running_mean, running_var; version 3
  normalises with ``running_var + eps`` exactly like ``nn.BatchNorm2d``
  with eps 1e-5 in eval mode).  So the four tensors are copied unchanged
  and the ``*_d2-weights.py`` configs use frozen BN (``requires_grad=False,
  norm_eval=True``, mmcv's default eps 1e-5).  ``num_batches_tracked``,
  which FrozenBN does not have, is filled with 0 (unused in eval mode).
* Class order: detectron2's box classifier has the background last, like
  mmdet.  Panoptic FPN's semantic head predicts 54 channels with channel 0
  = "things" and 1..53 = stuff (detectron2's ``panoptic_separated``
  labels); mmdet's ``PanopticFPNHead`` has stuff 0..52 and things last
  (53), so channel 0 is moved to the end.  Stuff classes are in COCO id
  order in both.  Cityscapes uses the 19 train ids in both.
* Anchors: detectron2's cell anchors (sizes 32..512, ratios h/w 0.5, 1, 2,
  offset 0) are mmdet's ``AnchorGenerator(strides [4..64], scales [8],
  ratios [0.5, 1, 2])`` in the same order, so the RPN convs copy as is.
  Box deltas with weights (10, 10, 5, 5) are mmdet's ``target_stds (0.1,
  0.1, 0.2, 0.2)``.

Source keys dropped on purpose (listed in every report): ``pixel_mean`` /
``pixel_std`` (they become the config's ``data_preprocessor``; checked
against it) and ``proposal_generator.anchor_generator.cell_anchors.*``
(recomputed by mmdet; checked against the config's anchor generator).
Every other source key must be used and every target key filled, or the
conversion fails.
"""
import copy
import importlib
import os
import os.path as osp
import pickle
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor

#: detectron2's pixel statistics for the MSRA (caffe) ResNets, BGR order.
D2_PIXEL_MEAN = (103.530, 116.280, 123.675)
D2_PIXEL_STD = (1.0, 1.0, 1.0)

#: Models this converter knows and the task (toolbox) of each.
D2_MODELS = {
    'faster_rcnn': 'det',
    'mask_rcnn': 'det',
    'point_rend': 'det',
    'panoptic_fpn': 'det',
    'point_rend_semantic': 'seg',
    'maskformer': 'seg',
}

#: (model, depth) -> config under the repository's ``configs/``.
D2_WEIGHT_CONFIGS = {
    ('faster_rcnn', 50):
    'det/faster_rcnn/faster-rcnn_r50_fapn_1x_coco_d2-weights.py',
    ('faster_rcnn', 101):
    'det/faster_rcnn/faster-rcnn_r101_fapn_ms-3x_coco_d2-weights.py',
    ('mask_rcnn', 50):
    'det/mask_rcnn/mask-rcnn_r50_fapn_1x_coco_d2-weights.py',
    ('mask_rcnn', 101):
    'det/mask_rcnn/mask-rcnn_r101_fapn_ms-poly-3x_coco_d2-weights.py',
    ('point_rend', 50):
    'det/point_rend/point-rend_r50-caffe_fapn_ms-1x_coco_d2-weights.py',
    ('panoptic_fpn', 50):
    'det/panoptic_fpn/panoptic-fpn_r50_fapn_1x_coco_d2-weights.py',
    ('panoptic_fpn', 101):
    'det/panoptic_fpn/panoptic-fpn_r101_fapn_ms-3x_coco_d2-weights.py',
    ('point_rend_semantic', 50):
    'seg/point_rend/pointrend_r50_fapn_8xb4-65k_cityscapes-512x1024'
    '_d2-weights.py',
    ('point_rend_semantic', 101):
    'seg/point_rend/pointrend_r101_fapn_8xb4-65k_cityscapes-512x1024'
    '_d2-weights.py',
    ('maskformer', 'swin-l'):
    'seg/maskformer/maskformer_swin-l_fapn_8xb2-160k_ade20k-640x640'
    '_d2-weights.py',
    ('maskformer', 101):
    'seg/maskformer/maskformer_r101_fapn_8xb4-60k_coco-stuff10k-640x640'
    '_d2-weights.py',
}

_RES4_BLOCKS_TO_DEPTH = {6: 50, 23: 101}

_DROP_REASONS = (
    (re.compile(r'pixel_(mean|std)'),
     'input normalisation: set by the config\'s data_preprocessor'),
    (re.compile(r'proposal_generator\.anchor_generator\.cell_anchors\.\d+'),
     'anchors: recomputed by mmdet\'s AnchorGenerator from the config'),
)

_NORM = r'(weight|bias|running_mean|running_var)'


class D2ConversionError(ValueError):
    """A detectron2 checkpoint that does not convert cleanly; the message is
    the full report (unused source keys, unfilled target keys, shape
    mismatches)."""


class D2UnsupportedError(D2ConversionError):
    """Not one of the released FaPN models (a one-line message: what was
    found and what is supported)."""


@dataclass
class ConversionReport:
    """What a conversion did, key by key.

    Attributes:
        model (str): detected detectron2 model, a key of :data:`D2_MODELS`.
        depth (int | str): ResNet depth, or a Swin variant ('swin-l').
        task (str): 'det' (mmdet) or 'seg' (mmseg).
        mapped (dict): source key -> target key.
        dropped (dict): source key -> why it was dropped on purpose.
        unused (list): source keys no rule took (must be empty).
        synthesized (list): target keys filled with a default value.
        unfilled (list): target model keys left without a value.
        unexpected (list): converted keys the target model does not have.
        mismatched (list): (target key, converted shape, model shape).
        errors (list): other failed checks (e.g. pixel mean, anchors).
        config (str, optional): the config checked against.
    """
    model: str
    depth: Union[int, str]
    task: str
    mapped: Dict[str, str] = field(default_factory=dict)
    dropped: Dict[str, str] = field(default_factory=dict)
    unused: List[str] = field(default_factory=list)
    synthesized: List[str] = field(default_factory=list)
    unfilled: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mismatched: List[Tuple[str, tuple, tuple]] = field(default_factory=list)
    errors: List[str] = field(default_factory=list)
    config: Optional[str] = None

    @property
    def ok(self) -> bool:
        return not (self.unused or self.unfilled or self.unexpected
                    or self.mismatched or self.errors)

    def format(self) -> str:
        from .d2_maskformer import arch_name
        lines = [
            f'detectron2 {self.model} {arch_name(self.depth)} -> '
            f'{"mmdet" if self.task == "det" else "mmseg"}'
            + (f' ({self.config})' if self.config else ''),
            f'  mapped: {len(self.mapped)} source keys',
            f'  dropped on purpose: {len(self.dropped)}',
        ]
        for k, why in sorted(self.dropped.items()):
            lines.append(f'    {k}: {why}')
        if self.synthesized:
            lines.append(f'  filled with a default: {len(self.synthesized)} '
                         '(BN num_batches_tracked = 0; FrozenBN has none)')

        def _section(title, items):
            lines.append(f'  {title}: {len(items)}')
            lines.extend(f'    {item}' for item in items)

        _section('UNUSED source keys', sorted(self.unused))
        _section('UNFILLED target keys', sorted(self.unfilled))
        _section('UNEXPECTED converted keys (not in the model)',
                 sorted(self.unexpected))
        _section('SHAPE mismatches (key, converted, model)',
                 [f'{k}: {tuple(a)} vs {tuple(b)}'
                  for k, a, b in self.mismatched])
        _section('other errors', self.errors)
        lines.append('  result: ' + ('OK' if self.ok else 'FAILED'))
        return '\n'.join(lines)


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------
class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles detectron2's ``.pkl`` model files (dicts of numpy arrays)
    and refuses any other global, so a ``.pkl`` cannot run code."""

    _NUMPY_CORE = ('numpy.core.multiarray', 'numpy._core.multiarray')

    def find_class(self, module, name):
        if module in self._NUMPY_CORE and name in ('_reconstruct', 'scalar'):
            for mod in ('numpy._core.multiarray', 'numpy.core.multiarray'):
                try:
                    return getattr(importlib.import_module(mod), name)
                except (ImportError, AttributeError):
                    continue
        if module == 'numpy' and name in ('ndarray', 'dtype'):
            return getattr(np, name)
        if module in ('numpy.dtypes', ) and name.endswith('DType'):
            return getattr(importlib.import_module(module), name)
        if module == 'collections' and name == 'OrderedDict':
            return OrderedDict
        raise pickle.UnpicklingError(
            f'refusing to unpickle {module}.{name}: a detectron2 .pkl model '
            'holds only numpy arrays (pass trust_pickle=True / '
            '--trust-pickle only for a file from a trusted source)')


def load_d2_checkpoint(
        path: str,
        trust_pickle: bool = False) -> 'OrderedDict[str, Tensor]':
    """Read a detectron2 checkpoint and return its model state dict.

    Args:
        path (str): ``model_final.pth`` (torch) or a detectron2 ``.pkl``
            (pickled dict of numpy arrays).  The weights may sit under a
            ``'model'`` key (detectron2) or be the top-level dict.
        trust_pickle (bool): allow arbitrary pickled objects.  Off by
            default: ``.pth`` files are read with ``torch.load(...,
            weights_only=True)`` and ``.pkl`` files with an unpickler that
            accepts numpy arrays only.

    Returns:
        OrderedDict[str, Tensor]: detectron2 parameter name -> tensor.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f'checkpoint path must be a str, got {path!r}')
    path = os.fspath(path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'detectron2 checkpoint not found: {path!r}')
    try:
        if path.endswith('.pkl'):
            with open(path, 'rb') as f:
                if trust_pickle:
                    data = pickle.load(f, encoding='latin1')
                else:
                    data = _NumpyOnlyUnpickler(f, encoding='latin1').load()
        else:
            data = torch.load(
                path, map_location='cpu', weights_only=not trust_pickle)
    except pickle.UnpicklingError as e:
        raise D2ConversionError(
            f'cannot read {path!r} safely: {e}. If the file comes from a '
            'source you trust, pass --trust-pickle (trust_pickle=True).'
        ) from e
    if not isinstance(data, Mapping):
        raise D2ConversionError(
            f'{path!r} holds a {type(data).__name__}, expected a dict with a '
            "'model' state dict")
    weights = data.get('model', data)
    if not isinstance(weights, Mapping):
        raise D2ConversionError(
            f"{path!r}: 'model' is a {type(weights).__name__}, expected a "
            'state dict')
    state = OrderedDict()
    for k, v in weights.items():
        if isinstance(v, np.ndarray):
            v = torch.from_numpy(np.ascontiguousarray(v))
        if not isinstance(v, Tensor):
            if k.startswith('__'):  # d2 .pkl metadata such as __author__
                continue
            raise D2ConversionError(
                f'{path!r}: entry {k!r} is a {type(v).__name__}, not a '
                'tensor or numpy array')
        state[k] = v
    return state


# --------------------------------------------------------------------------
# Detection of the model
# --------------------------------------------------------------------------
def detect_d2_model(
        d2_state: Mapping[str, Tensor]) -> Tuple[str, Union[int, str], str]:
    """Tell which released model a detectron2 FaPN state dict holds.

    Returns:
        tuple: (model, depth, task), e.g. ``('mask_rcnn', 50, 'det')``,
        ``('maskformer', 'swin-l', 'seg')``.

    Raises:
        D2UnsupportedError: not a released FaPN model (one-line message).
    """
    from .d2_maskformer import detect_maskformer, is_maskformer
    keys = list(d2_state)
    if is_maskformer(keys):
        return 'maskformer', detect_maskformer(d2_state), 'seg'
    if not any(k.startswith('backbone.bottom_up.') for k in keys):
        raise D2UnsupportedError(
            'not a detectron2 ResNet checkpoint: no backbone.bottom_up.* '
            f'keys (first keys: {keys[:5]})')
    if not any(k.startswith('backbone.fan_align') for k in keys):
        hint = (' (backbone.fpn_lateral* found: a plain FPN model)' if any(
            k.startswith('backbone.fpn_lateral') for k in keys) else '')
        raise D2UnsupportedError(
            'not a FaPN checkpoint: no backbone.fan_align* keys' + hint)
    res4 = {
        int(m.group(1))
        for m in (re.match(r'backbone\.bottom_up\.res4\.(\d+)\.', k)
                  for k in keys) if m
    }
    num_blocks = max(res4) + 1 if res4 else 0
    if num_blocks not in _RES4_BLOCKS_TO_DEPTH:
        raise D2UnsupportedError(
            f'unsupported ResNet: res4 has {num_blocks} blocks (R-50 has 6, '
            'R-101 has 23)')
    depth = _RES4_BLOCKS_TO_DEPTH[num_blocks]

    def has(prefix):
        return any(k.startswith(prefix) for k in keys)

    if has('sem_seg_head.point_head.') or has(
            'sem_seg_head.coarse_sem_seg_head.'):
        model = 'point_rend_semantic'
    elif has('sem_seg_head.'):
        model = 'panoptic_fpn'
    elif has('roi_heads.mask_point_head.') or has(
            'roi_heads.mask_head.point_head.') or has(
                'roi_heads.mask_coarse_head.') or has(
                    'roi_heads.mask_head.coarse_head.'):
        model = 'point_rend'
    elif has('roi_heads.mask_head.'):
        model = 'mask_rcnn'
    elif has('roi_heads.box_predictor.'):
        model = 'faster_rcnn'
    else:
        raise D2UnsupportedError(
            'unknown detectron2 model: none of roi_heads.box_predictor.*, '
            'roi_heads.mask_head.*, sem_seg_head.* found')
    return model, depth, D2_MODELS[model]


# --------------------------------------------------------------------------
# Key rules
# --------------------------------------------------------------------------
Rule = Tuple['re.Pattern', Callable[['re.Match'], Optional[str]]]


def resnet_rules(prefix: str) -> List[Rule]:
    """detectron2 ResNet names under ``prefix`` -> mmdet/mmseg ResNet."""
    r: List[Rule] = []

    def add(pattern, fn):
        r.append((re.compile(prefix + pattern), fn))

    add(r'stem\.conv1\.weight', lambda m: 'backbone.conv1.weight')
    add(r'stem\.conv1\.norm\.' + _NORM, lambda m: f'backbone.bn1.{m[1]}')
    add(r'res([2-5])\.(\d+)\.conv([1-3])\.weight',
        lambda m: f'backbone.layer{int(m[1]) - 1}.{m[2]}.conv{m[3]}.weight')
    add(r'res([2-5])\.(\d+)\.conv([1-3])\.norm\.' + _NORM,
        lambda m: f'backbone.layer{int(m[1]) - 1}.{m[2]}.bn{m[3]}.{m[4]}')
    add(r'res([2-5])\.(\d+)\.shortcut\.weight',
        lambda m: f'backbone.layer{int(m[1]) - 1}.{m[2]}.downsample.0.weight')
    add(r'res([2-5])\.(\d+)\.shortcut\.norm\.' + _NORM,
        lambda m: f'backbone.layer{int(m[1]) - 1}.{m[2]}.downsample.1.{m[3]}')
    return r


def _rules(task: str, model: str, stage0: int) -> List[Rule]:
    """Ordered (pattern, target) rules; the first full match wins."""
    r: List[Rule] = []

    def add(pattern: str, fn: Callable[['re.Match'], Optional[str]]):
        r.append((re.compile(pattern), fn))

    lvl = (lambda s: int(s) - stage0)  # noqa: E731
    # backbone (detectron2 MSRA ResNet)
    r.extend(resnet_rules(r'backbone\.bottom_up\.'))
    # neck (released FAN)
    fa = r'backbone\.fan_align(\d)\.'
    add(fa + r'lateral_conv\.conv_atten\.weight',
        lambda m: f'neck.lateral_convs.{lvl(m[1])}.conv_atten.conv.weight')
    add(fa + r'lateral_conv\.conv\.weight',
        lambda m: f'neck.lateral_convs.{lvl(m[1])}.conv.conv.weight')
    add(fa + r'offset\.weight',
        lambda m: f'neck.align_modules.{lvl(m[1])}.offset_fusion.conv.weight')
    add(fa + r'dcpack_L2\.(weight|bias)',
        lambda m: f'neck.align_modules.{lvl(m[1])}.dcn.{m[2]}')
    add(fa + r'dcpack_L2\.conv_offset_mask\.(weight|bias)',
        lambda m: f'neck.align_modules.{lvl(m[1])}.dcn.conv_offset.{m[2]}')
    add(r'backbone\.fpn_output(\d)\.(weight|bias)',
        lambda m: f'neck.fpn_convs.{lvl(m[1])}.conv.{m[2]}')
    # the top level: a plain 1x1 conv registered as fan_align{top}
    add(r'backbone\.fan_align(\d)\.(weight|bias)',
        lambda m: f'neck.lateral_convs.{lvl(m[1])}.conv.{m[2]}')

    wb = r'\.(weight|bias)'
    if task == 'det':
        rpn = r'proposal_generator\.rpn_head\.'
        for src, dst in (('conv', 'rpn_conv'), ('objectness_logits',
                                                'rpn_cls'),
                         ('anchor_deltas', 'rpn_reg')):
            add(rpn + src + wb, lambda m, d=dst: f'rpn_head.{d}.{m[1]}')
        add(r'roi_heads\.box_head\.fc([12])' + wb,
            lambda m: f'roi_head.bbox_head.shared_fcs.{int(m[1]) - 1}.{m[2]}')
        add(r'roi_heads\.box_predictor\.cls_score' + wb,
            lambda m: f'roi_head.bbox_head.fc_cls.{m[1]}')
        add(r'roi_heads\.box_predictor\.bbox_pred' + wb,
            lambda m: f'roi_head.bbox_head.fc_reg.{m[1]}')
        if model in ('mask_rcnn', 'panoptic_fpn'):
            mh = r'roi_heads\.mask_head\.'
            add(mh + r'mask_fcn(\d+)' + wb, lambda m:
                f'roi_head.mask_head.convs.{int(m[1]) - 1}.conv.{m[2]}')
            add(mh + r'deconv' + wb,
                lambda m: f'roi_head.mask_head.upsample.{m[1]}')
            add(mh + r'predictor' + wb,
                lambda m: f'roi_head.mask_head.conv_logits.{m[1]}')
        if model == 'point_rend':
            # detectron2 >= v0.4 names first, then the older ones
            coarse = (r'roi_heads\.(?:mask_head\.coarse_head|'
                      r'mask_coarse_head)\.')
            point = r'roi_heads\.(?:mask_head\.point_head|mask_point_head)\.'
            add(coarse + r'reduce_spatial_dim_conv' + wb,
                lambda m: f'roi_head.mask_head.downsample_conv.conv.{m[1]}')
            add(coarse + r'(?:coarse_mask_)?fc(\d+)' + wb,
                lambda m: f'roi_head.mask_head.fcs.{int(m[1]) - 1}.{m[2]}')
            add(coarse + r'prediction' + wb,
                lambda m: f'roi_head.mask_head.fc_logits.{m[1]}')
            add(point + r'fc(\d+)' + wb,
                lambda m: f'roi_head.point_head.fcs.{int(m[1]) - 1}.conv.'
                f'{m[2]}')
            add(point + r'predictor' + wb,
                lambda m: f'roi_head.point_head.fc_logits.{m[1]}')
        if model == 'panoptic_fpn':
            sh = r'sem_seg_head\.'

            def _conv_upsample(m, layer, param):
                k = int(m[2])
                if k % 2:  # odd Sequential entries are nn.Upsample
                    return None
                return (f'semantic_head.conv_upsample_layers.{lvl(m[1])}.'
                        f'conv.{k // 2}.{layer}.{param}')

            add(sh + r'p(\d)\.(\d+)\.weight',
                lambda m: _conv_upsample(m, 'conv', 'weight'))
            add(sh + r'p(\d)\.(\d+)\.norm' + wb,
                lambda m: _conv_upsample(m, 'gn', m[3]))
            add(sh + r'predictor' + wb,
                lambda m: f'semantic_head.conv_logits.{m[1]}')
    else:
        cs = r'sem_seg_head\.coarse_sem_seg_head\.'
        add(cs + r'p(\d)\.(\d+)\.weight',
            lambda m: f'decode_head.0.scale_heads.{lvl(m[1])}.{m[2]}.conv.'
            'weight')
        add(cs + r'p(\d)\.(\d+)\.norm' + wb,
            lambda m: f'decode_head.0.scale_heads.{lvl(m[1])}.{m[2]}.gn.'
            f'{m[3]}')
        add(cs + r'predictor' + wb,
            lambda m: f'decode_head.0.conv_seg.{m[1]}')
        ph = r'sem_seg_head\.point_head\.'
        add(ph + r'fc(\d+)' + wb,
            lambda m: f'decode_head.1.fcs.{int(m[1]) - 1}.conv.{m[2]}')
        add(ph + r'predictor' + wb, lambda m: f'decode_head.1.fc_seg.{m[1]}')
    return r


def _panoptic_things_last(t: Tensor) -> Tensor:
    """detectron2 channel 0 ("things") -> last channel (mmdet's order)."""
    return torch.cat([t[1:], t[:1]], dim=0)


def convert_d2_state_dict(
    d2_state: Mapping[str, Tensor],
    task: Optional[str] = None,
) -> Tuple['OrderedDict[str, Tensor]', ConversionReport]:
    """Rename (and where needed re-order) a detectron2 FaPN state dict.

    Args:
        d2_state (Mapping[str, Tensor]): from :func:`load_d2_checkpoint`.
        task (str, optional): 'det' or 'seg'; checked against the model the
            keys describe.  None: taken from the keys.

    Returns:
        tuple: (mmdet/mmseg state dict, report).  The report's ``unused``
        lists source keys that no rule took; it is not yet checked against
        a model (see :func:`check_against_model`).
    """
    model, depth, model_task = detect_d2_model(d2_state)
    if task is not None:
        if task not in ('det', 'seg'):
            raise ValueError(f"task must be 'det' or 'seg', got {task!r}")
        if task != model_task:
            raise D2ConversionError(
                f'--task {task} does not match the checkpoint: its keys '
                f'describe a detectron2 {model} (task {model_task!r})')
    task = model_task
    report = ConversionReport(model=model, depth=depth, task=task)
    dropped: Dict[str, str] = {}
    transform = None
    if model == 'maskformer':
        from . import d2_maskformer
        rules = d2_maskformer.maskformer_rules(depth)
        dropped, report.errors = d2_maskformer.drop_reasons(d2_state)
        transform = d2_maskformer.transform
    else:
        stages = sorted({
            int(m.group(1))
            for m in (re.match(r'backbone\.(?:fan_align|fpn_output)(\d)\.',
                               k) for k in d2_state) if m
        })
        rules = _rules(task, model, stage0=stages[0])
    out: 'OrderedDict[str, Tensor]' = OrderedDict()
    for key, value in d2_state.items():
        reason = dropped.get(key) or next(
            (why for pat, why in _DROP_REASONS if pat.fullmatch(key)), None)
        if reason is not None:
            report.dropped[key] = reason
            continue
        target = None
        for pattern, fn in rules:
            m = pattern.fullmatch(key)
            if m:
                target = fn(m)
                break
        if target is None:
            report.unused.append(key)
            continue
        if target in out:
            raise D2ConversionError(
                f'two source keys map to {target!r} (second: {key!r})')
        if model == 'panoptic_fpn' and target.startswith(
                'semantic_head.conv_logits.'):
            value = _panoptic_things_last(value)
        if transform is not None:
            value = transform(target, value)
        out[target] = value
        report.mapped[key] = target
        if target.endswith('.running_mean'):
            nbt = target[:-len('running_mean')] + 'num_batches_tracked'
            out[nbt] = torch.tensor(0, dtype=torch.long)
            report.synthesized.append(nbt)
    return out, report


# --------------------------------------------------------------------------
# Checks against the target model
# --------------------------------------------------------------------------
def check_against_model(state: Mapping[str, Tensor],
                        target: Mapping[str, Tensor],
                        report: ConversionReport) -> ConversionReport:
    """Fill ``report`` with the target keys not filled, converted keys the
    model lacks, and shape mismatches.  ``target``: ``model.state_dict()``.
    """
    report.unfilled = [k for k in target if k not in state]
    report.unexpected = [k for k in state if k not in target]
    report.mismatched = [(k, tuple(state[k].shape), tuple(target[k].shape))
                         for k in state
                         if k in target and state[k].shape != target[k].shape]
    return report


def _check_pixel_stats(d2_state, cfg, report) -> None:
    pre = cfg.model.get('data_preprocessor', {}) or {}
    for name, key in (('mean', 'pixel_mean'), ('std', 'pixel_std')):
        if key not in d2_state or pre.get(name) is None:
            continue
        want = torch.tensor(pre[name], dtype=torch.float64).flatten()
        got = d2_state[key].double().flatten()
        if got.shape != want.shape or not torch.allclose(
                got, want, atol=1e-3):
            report.errors.append(
                f'{key} {got.tolist()} != data_preprocessor.{name} '
                f'{want.tolist()} of the config')
    if 'pixel_mean' in d2_state and pre.get('bgr_to_rgb', False) and \
            report.model != 'maskformer':  # MaskFormer models take RGB
        report.errors.append(
            'the config converts BGR to RGB, detectron2 MSRA models take '
            'BGR input (data_preprocessor.bgr_to_rgb must be False)')


def _check_anchors(d2_state, model, report) -> None:
    cells = sorted(
        (int(k.rsplit('.', 1)[1]), v) for k, v in d2_state.items()
        if k.startswith('proposal_generator.anchor_generator.cell_anchors.'))
    if not cells or not hasattr(model, 'rpn_head'):
        return
    base = model.rpn_head.prior_generator.base_anchors
    if len(base) != len(cells):
        report.errors.append(
            f'{len(cells)} detectron2 anchor levels, {len(base)} in the '
            'config')
        return
    for (i, d2_anchors), mm_anchors in zip(cells, base):
        if d2_anchors.shape != mm_anchors.shape or not torch.allclose(
                d2_anchors.float(), mm_anchors.float(), atol=1e-2):
            report.errors.append(
                f'anchor level {i}: detectron2 {d2_anchors.tolist()} != '
                f'config {mm_anchors.tolist()}')


def build_target_model(config: Union[str, 'object']):
    """Build the (uninitialised) model of an mmdet/mmseg config on CPU."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    scope = cfg.get('default_scope', 'mmdet')
    init_default_scope(scope)
    registry = importlib.import_module(f'{scope}.registry').MODELS
    model_cfg = cfg.model.copy()
    if 'pretrained' in model_cfg:
        model_cfg.pretrained = None
    if model_cfg.get('backbone') is not None:
        model_cfg.backbone.init_cfg = None
    return registry.build(model_cfg), cfg


def dataset_meta(cfg) -> Optional[dict]:
    """The class names (and palette) of the config's test dataset, as
    mmengine's Runner stores them in ``meta['dataset_meta']``.

    mmdet's ``init_detector`` and mmseg's ``init_model`` read them from a
    checkpoint; mmseg's fails on PointRend without them.  Read from the
    dataset class's ``METAINFO`` (updated by the config's ``metainfo``), so
    the dataset's files need not exist.  None when the config has no test
    dataset of a registered type.
    """
    dataset = (cfg.get('test_dataloader') or {}).get('dataset')
    while isinstance(dataset, dict) and 'type' in dataset and \
            isinstance(dataset.get('dataset'), dict):
        dataset = dataset['dataset']  # dataset wrappers
    if not isinstance(dataset, dict) or not isinstance(
            dataset.get('type'), str):
        return None
    scope = cfg.get('default_scope', 'mmdet')
    registry = importlib.import_module(f'{scope}.registry').DATASETS
    cls = registry.get(dataset['type'])
    if cls is None or not hasattr(cls, 'METAINFO'):
        return None
    meta = copy.deepcopy(dict(cls.METAINFO))
    meta.update(copy.deepcopy(dict(dataset.get('metainfo') or {})))
    return meta


def default_config(model: str, depth: Union[int, str],
                   configs_root: Optional[str] = None) -> str:
    """The shipped ``*_d2-weights.py`` config for a released model (under
    ``configs_root``, by default :func:`mmfapn.utils.config_files.
    configs_root`)."""
    if configs_root is None:  # the shipped configs (mmfapn/.mim/configs)
        from .config_files import configs_root as shipped_configs
        configs_root = shipped_configs()
    rel = D2_WEIGHT_CONFIGS.get((model, depth))
    if rel is None:
        from .d2_maskformer import arch_name
        raise D2UnsupportedError(
            f'no *_d2-weights.py config for a detectron2 {model} '
            f'{arch_name(depth)} (none was released); pass --config')
    path = osp.join(configs_root, rel)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'config {path!r} not found (mmfapn installed without its '
            'configs?); pass --config')
    return path


def convert_d2_checkpoint(src: str,
                          dst: Optional[str] = None,
                          config: Optional[str] = None,
                          task: Optional[str] = None,
                          trust_pickle: bool = False) -> ConversionReport:
    """Convert a detectron2 FaPN checkpoint file and check it against the
    model of ``config``; write ``dst`` only when everything matches.

    Args:
        src (str): detectron2 ``.pth`` / ``.pkl``.
        dst (str, optional): output mmengine checkpoint (``state_dict`` +
            ``meta``).  None: check only.
        config (str, optional): mmdet/mmseg config whose model receives the
            weights.  None: this repository's ``*_d2-weights.py`` config of
            the detected model (:data:`D2_WEIGHT_CONFIGS`).
        task (str, optional): 'det' | 'seg', checked against the keys.
        trust_pickle (bool): see :func:`load_d2_checkpoint`.

    Returns:
        ConversionReport: with ``ok`` True (otherwise
        :class:`D2ConversionError` is raised with the report).
    """
    d2_state = load_d2_checkpoint(src, trust_pickle=trust_pickle)
    state, report = convert_d2_state_dict(d2_state, task=task)
    if config is None:
        config = default_config(report.model, report.depth)
    elif not osp.isfile(config):
        raise FileNotFoundError(f'config not found: {config!r}')
    report.config = config
    model, cfg = build_target_model(config)
    check_against_model(state, model.state_dict(), report)
    _check_pixel_stats(d2_state, cfg, report)
    _check_anchors(d2_state, model, report)
    if report.model == 'maskformer':
        from .d2_maskformer import check_config
        check_config(d2_state, cfg, model, report)
    if report.ok:
        # the real test: a strict load into the config's model
        model.load_state_dict(state, strict=True)
    if not report.ok:
        raise D2ConversionError(report.format())
    if dst is not None:
        os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
        meta = dict(
            source=osp.basename(src),
            converted_by='mmfapn tools/model_converters/d2_fapn_to_mmdet.py',
            d2_model=report.model,
            depth=report.depth,
            task=report.task,
            config=osp.basename(config),
            dropped_keys=sorted(report.dropped))
        classes = dataset_meta(cfg)
        if classes is not None:
            meta['dataset_meta'] = classes
        torch.save({'meta': meta, 'state_dict': state}, dst)
    return report


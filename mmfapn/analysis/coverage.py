"""Does ``neck=dict(type='FaPN')`` work wherever mmdet and mmseg use FPN?

One stock config is checked by :func:`check_config`: its model config is
searched for every ``FPN`` (the neck, an entry of a neck list, or a pyramid
nested anywhere else in the model, e.g. inside a head or a detector wrapped
by another model), each is swapped for FaPN with the same arguments (only
``type`` changes, as a child config's ``neck=dict(type='FaPN')`` does), and
the model is built without weights and run on CPU: one ``loss`` (finite,
back-propagated into every FAM offset conv) and one ``predict`` (well-formed
results) on a small generated batch (:mod:`mmfapn.analysis.coverage_batch`).
When the FaPN model fails, the stock FPN model is run the same way: if it
fails at the same stage with the same exception type the failure is not
FaPN's (``not_runnable``, with a reason such as a CUDA-only op, an optional
dependency or weights needed at build time); otherwise it is FaPN's
(``fail``).

What the check changes in both models alike (so that any stock model runs
on CPU in seconds): no pretrained weights (``init_cfg`` of type
``Pretrained``, ``pretrained`` and ``teacher_ckpt`` are dropped), SyncBN
becomes BN (as mmengine's Runner does without distribution), the data
preprocessor's ``batch_augments`` (training-time fixed-size padding or
random resizing) are dropped and mmseg's crop ``size`` becomes the batch's
padded size, every ``train_cfg`` sampler draws at most 64 samples per image
(RPN anchors, RoIs: the RoI heads' CPU cost grows with them, FaPN's does
not), and ``test_cfg`` keeps every detection (``score_thr=0``) but at most
10 per image (``max_per_img``) so that the post-processing and mask paths of
an untrained model run on a fixed, small number of boxes.
"""
import copy
import importlib
import os
import os.path as osp
import re
import time
import traceback
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from mmfapn.apis.inference import build_model_cfg, drop_pretrained
from mmfapn.registry import SCOPES
from mmfapn.utils.config_files import stock_configs_root

# FPN type names as configs write them -> FaPN under the same scope
FPN_TYPES = {
    'FPN': 'FaPN',
    'mmdet.FPN': 'mmdet.FaPN',
    'mmseg.FPN': 'mmseg.FaPN',
}
STAGES = ('import', 'build', 'loss', 'predict')
MAX_PER_IMG = 10
MAX_SAMPLED_ROIS = 64
# statuses of a record (one per config)
OK, FAIL, NOT_RUNNABLE, NO_FPN, CONFIG_ERROR = (
    'ok', 'fail', 'not_runnable', 'no_fpn', 'config_error')


class StageError(Exception):
    """A check failed at ``stage`` with the one-line message ``line``."""

    def __init__(self, stage: str, line: str, kind: str,
                 where: str = '') -> None:
        super().__init__(f'{stage}: {line}')
        self.stage = stage
        self.line = line
        self.kind = kind
        self.where = where


# --------------------------------------------------------------------------
# configs
# --------------------------------------------------------------------------
def list_stock_configs(toolbox: str) -> List[str]:
    """Every config of ``toolbox`` as ``'<toolbox>::<relative path>'``
    (sorted; ``_base_`` fragments excluded)."""
    root = stock_configs_root(toolbox)
    names = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith('_base_'))
        rel = osp.relpath(folder, root)
        for name in files:
            if name.endswith('.py') and not name.startswith('_'):
                path = name if rel == '.' else f'{rel}/{name}'
                names.append(f'{toolbox}::{path}')
    return sorted(names)


def split_name(name: str) -> Tuple[str, str]:
    """``'mmdet::a/b.py'`` -> ``('mmdet', 'a/b.py')``."""
    toolbox, sep, rel = name.partition('::')
    if not sep or toolbox not in SCOPES or not rel:
        raise ValueError(f'coverage: a stock config is written '
                         f'"mmdet::path" or "mmseg::path", got {name!r}')
    return toolbox, rel


def load_stock_config(name: str):
    """The mmengine ``Config`` of stock config ``name`` (custom imports
    are not run here: :func:`check_model` does that)."""
    from mmengine import Config
    toolbox, rel = split_name(name)
    path = osp.join(stock_configs_root(toolbox), rel)
    if not osp.isfile(path):
        raise FileNotFoundError(f'coverage: no stock config {path}')
    return Config.fromfile(path, import_custom_modules=False,
                           format_python_code=False)


def find_fpns(node: Any, path: str = 'model') -> List[str]:
    """Paths (``'model.neck'``, ``'model.neck[0]'``, ...) of every dict
    whose ``type`` is an FPN (see ``FPN_TYPES``)."""
    found = []
    if isinstance(node, dict):
        if node.get('type') in FPN_TYPES:
            found.append(path)
        for key, value in node.items():
            found += find_fpns(value, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            found += find_fpns(value, f'{path}[{i}]')
    return found


def swap_fpns(model_cfg: dict) -> dict:
    """A deep copy of ``model_cfg`` with every FPN's ``type`` replaced by
    FaPN; all other arguments stay."""

    def visit(node):
        if isinstance(node, dict):
            out = {k: visit(v) for k, v in node.items()}
            if out.get('type') in FPN_TYPES:
                out['type'] = FPN_TYPES[out['type']]
            return out
        if isinstance(node, (list, tuple)):
            return type(node)(visit(v) for v in node)
        return copy.deepcopy(node)

    return visit(_plain(model_cfg))


def _at(node: Any, path: str) -> Any:
    """The node of ``find_fpns``' ``path`` (``model.a[0].b``)."""
    for part in re.findall(r'\.(\w+)|\[(\d+)\]', path[len('model'):]):
        node = node[part[0]] if part[0] else node[int(part[1])]
    return node


def _plain(node: Any) -> Any:
    """ConfigDicts -> dicts (recursively), for hashing and copying."""
    if isinstance(node, dict):
        return {k: _plain(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_plain(v) for v in node]
    return node


def neck_types(model_cfg: dict) -> List[str]:
    """``type`` of the model's neck(s) (the neck of a wrapped detector
    too), for the list of configs without FPN."""
    types = []

    def visit(node, key=None):
        if isinstance(node, dict):
            if key == 'neck' and 'type' in node:
                types.append(str(node['type']))
            for k, v in node.items():
                visit(v, k)
        elif isinstance(node, (list, tuple)):
            for v in node:
                visit(v, key)

    visit(model_cfg)
    return types


def task_of(toolbox: str, model_cfg: dict) -> str:
    """'semantic' (mmseg), 'panoptic', 'instance' or 'bbox' (detection,
    RPN included) from the model config's heads."""
    if toolbox == 'mmseg':
        return 'semantic'
    keys = set()
    types = set()

    def visit(node):
        if isinstance(node, dict):
            keys.update(k for k, v in node.items() if v is not None)
            if isinstance(node.get('type'), str):
                types.add(node['type'])
            for v in node.values():
                visit(v)
        elif isinstance(node, (list, tuple)):
            for v in node:
                visit(v)

    visit(model_cfg)
    if 'panoptic_fusion_head' in keys or 'panoptic_head' in keys:
        return 'panoptic'
    instance_types = {'SOLO', 'SOLOv2', 'CondInst', 'BoxInst', 'YOLACT',
                      'SOLOHead', 'SOLOV2Head', 'YOLACTProtonet'}
    if 'mask_head' in keys or types & instance_types:
        return 'instance'
    return 'bbox'


# --------------------------------------------------------------------------
# preparing a model config for a CPU check
# --------------------------------------------------------------------------
def prepare_model_cfg(toolbox: str, model_cfg: dict,
                      batch_shape: Tuple[int, int]) -> dict:
    """The changes listed in the module docstring, on a copy."""
    cfg = _plain(model_cfg)
    drop_pretrained(cfg)
    root = stock_configs_root(toolbox)

    def visit(node):
        if isinstance(node, dict):
            if node.get('teacher_ckpt') is not None:
                node['teacher_ckpt'] = None
            teacher = node.get('teacher_config')
            if isinstance(teacher, str) and teacher.startswith('configs/'):
                # relative to mmdet's source tree: the installed copy
                node['teacher_config'] = osp.join(root, teacher[8:])
            for key, value in node.items():
                if key == 'test_cfg' and isinstance(value, dict):
                    _keep_all_detections(value)
                if key == 'train_cfg' and isinstance(value, (dict, list)):
                    _fewer_rois(value)
                visit(value)
        elif isinstance(node, list):
            for v in node:
                visit(v)

    visit(cfg)
    pre = cfg.get('data_preprocessor')
    if isinstance(pre, dict):
        pre.pop('batch_augments', None)
        if toolbox == 'mmseg' and pre.get('size') is not None:
            pre['size'] = tuple(batch_shape)
    return cfg


def _fewer_rois(train_cfg: Any) -> None:
    """At most ``MAX_SAMPLED_ROIS`` samples per image in every sampler
    (RPN anchors, RoIs): the RoI heads' CPU cost grows with them, FaPN's
    does not."""
    if isinstance(train_cfg, dict):
        sampler = train_cfg.get('sampler')
        if isinstance(sampler, dict) and isinstance(sampler.get('num'), int):
            sampler['num'] = min(sampler['num'], MAX_SAMPLED_ROIS)
        for value in train_cfg.values():
            _fewer_rois(value)
    elif isinstance(train_cfg, list):
        for value in train_cfg:
            _fewer_rois(value)


def _keep_all_detections(test_cfg: dict) -> None:
    for key, value in list(test_cfg.items()):
        if key == 'score_thr' and isinstance(value, (int, float)):
            test_cfg[key] = 0.0
        elif key == 'max_per_img' and isinstance(value, int):
            test_cfg[key] = min(value, MAX_PER_IMG)
        elif isinstance(value, dict):
            _keep_all_detections(value)


# --------------------------------------------------------------------------
# one model: build, loss, predict
# --------------------------------------------------------------------------
def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = f'{type(exc).__name__}: {text[0] if text else ""}'.strip()
    return line if len(line) <= 240 else line[:237] + '...'


def _where(exc: BaseException) -> str:
    """``package/file.py:line`` of the innermost frame (site-packages and
    repository prefixes dropped)."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ''
    frame = frames[-1]
    path = frame.filename
    for marker in ('site-packages/', '/mmfapn/'):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == '/mmfapn/':
                path = 'mmfapn/' + path
            break
    return f'{path}:{frame.lineno}'


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def fapn_modules(model: nn.Module) -> List[nn.Module]:
    from mmfapn.models.necks import FaPN
    return [m for m in model.modules() if isinstance(m, FaPN)]


def fam_offset_convs(model: nn.Module) -> Dict[str, nn.Module]:
    """Every FAM's offset/mask conv (``...dcn.conv_offset``) by name."""
    from mmfapn.models.layers import FeatureAlignModule
    return {
        f'{name}.dcn.conv_offset': m.dcn.conv_offset
        for name, m in model.named_modules()
        if isinstance(m, FeatureAlignModule)
    }


def build_model(toolbox: str, model_cfg: dict, custom_imports=None,
                init: bool = True) -> nn.Module:
    """Import what the config imports, build ``model_cfg`` in the
    toolbox's scope, initialise it as the Runner does (quietly), SyncBN ->
    BN (:func:`mmfapn.apis.build_model_cfg`)."""
    return build_model_cfg(toolbox, model_cfg, custom_imports,
                           init_weights=init)


def _staged(stage: str, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except StageError:
        raise
    except Exception as e:  # every failure is recorded, none is fatal
        raise StageError(stage, _first_line(e), type(e).__name__,
                         _where(e)) from e


def check_model(toolbox: str, model_cfg: dict, custom_imports=None,
                expect_fapn: bool = True, seed: int = 0,
                keep: Optional[dict] = None) -> Dict[str, Any]:
    """Build ``model_cfg`` and run one loss and one predict on CPU.

    Returns a dict: ``builds``, ``loss_ok``, ``predict_ok`` (bools),
    ``params``, ``seconds``, and for a failure ``stage``, ``error`` (the
    first line), ``error_type`` and ``where``.  ``expect_fapn``: the built
    model must contain FaPN (and no FPN) and the loss must reach every FAM
    offset conv with a non-zero gradient.  ``keep``: a dict that receives
    what was checked (``model``, ``loss``, ``log_vars``, ``batch``,
    ``results``), for tests that assert on them.
    """
    from mmfapn.analysis.coverage_batch import (BATCH_SHAPE, check_results,
                                                make_batch)
    out = dict(builds=False, loss_ok=False, predict_ok=False, params=None)
    keep = {} if keep is None else keep
    start = time.perf_counter()
    torch.manual_seed(seed)
    try:
        if custom_imports:
            from mmengine.utils import import_modules_from_strings
            _staged('import', import_modules_from_strings, **custom_imports)
        model_cfg = prepare_model_cfg(toolbox, model_cfg, BATCH_SHAPE)
        model = _staged('build', build_model, toolbox, model_cfg)
        keep['model'] = model
        out['params'] = count_params(model)
        out['fapn_params'] = [count_params(m) for m in fapn_modules(model)]
        if expect_fapn:
            _staged('build', _check_swapped, model)
        out['builds'] = True

        # what a Runner's first iteration tells the heads (e.g. BoxInst's
        # warm-up reads the iteration from the message hub)
        from mmengine.logging import MessageHub
        hub = MessageHub.get_current_instance()
        hub.update_info('iter', 0)
        hub.update_info('epoch', 0)
        model.train()
        batch = _staged('loss', make_batch, toolbox, model, train=True,
                        seed=seed)
        keep['loss'], keep['log_vars'] = _staged(
            'loss', _loss_and_backward, model, batch, expect_fapn)
        out['loss_ok'] = True

        model.eval()
        batch = _staged('predict', make_batch, toolbox, model, train=False,
                        seed=seed + 10)
        with torch.no_grad():
            results = _staged('predict', _predict, model, batch)
        keep.update(batch=batch, results=results)
        _staged('predict', check_results, toolbox, model, results, batch)
        out['predict_ok'] = True
    except StageError as e:
        out.update(stage=e.stage, error=e.line, error_type=e.kind,
                   where=e.where)
    out['seconds'] = round(time.perf_counter() - start, 2)
    return out


def _check_swapped(model: nn.Module) -> None:
    fpns = [type(m).__name__ for m in model.modules()
            if type(m).__name__ == 'FPN']
    if not fapn_modules(model) or fpns:
        raise AssertionError(f'the built model has {len(fapn_modules(model))}'
                             f' FaPN and {len(fpns)} FPN modules')


def _loss_and_backward(model: nn.Module, batch: dict,
                       expect_fapn: bool) -> Tuple[torch.Tensor, dict]:
    data = model.data_preprocessor(batch, training=True)
    losses = model(**data, mode='loss')
    loss, log_vars = model.parse_losses(losses)
    if not torch.isfinite(loss):
        raise FloatingPointError(f'loss is {loss.item()} ({dict(log_vars)})')
    model.zero_grad()
    loss.backward()
    if not expect_fapn:
        return loss.detach(), log_vars
    convs = fam_offset_convs(model)
    if not convs:
        raise AssertionError('no FAM in the built FaPN')
    for name, conv in convs.items():
        grad = conv.weight.grad
        if grad is None or not torch.isfinite(grad).all() or \
                not grad.abs().sum() > 0:
            state = 'no' if grad is None else (
                'a non-finite' if not torch.isfinite(grad).all() else 'zero')
            raise AssertionError(f'{name} got {state} gradient from the loss')
    return loss.detach(), log_vars


def _predict(model: nn.Module, batch: dict):
    data = model.data_preprocessor(batch, training=False)
    return model(**data, mode='predict')


# --------------------------------------------------------------------------
# one config: FaPN, then the stock model where FaPN fails
# --------------------------------------------------------------------------
# model types whose inputs are not single-image batches
SEMI_SUPERVISED = ('SoftTeacher', 'SemiBaseDetector')
VIDEO = ('MaskTrackRCNN', 'QDTrack', 'DeepSORT', 'StrongSORT', 'OCSORT',
         'ByteTrack', 'SORT', 'Mask2FormerVideo', 'BaseMOTModel')
REASONS = (
    # (reason, pattern on the stock model's error line)
    ('CUDA-only op', re.compile(
        r'cuda|gpu|not implemented for .?cpu|only support.*cuda|nvcc|'
        r'cudnn|device cpu not found|cpu (is )?not supported', re.I)),
    ('optional dependency not installed', re.compile(
        r'ModuleNotFoundError|ImportError|No module named|is not installed|'
        r'Please install|pip install|mim install|not in the \w+ registry|'
        r'not a registered', re.I)),
    ('weights or files needed at build time', re.compile(
        r'checkpoint|ckpt|pretrained|download|FileNotFoundError|'
        r'No such file|URLError|HTTP', re.I)),
    ('needs larger images than the sweep\'s (a kernel larger than a '
     'feature map)', re.compile(r'smaller than kernel', re.I)),
    ('the stock config does not build (an mmdet/mmseg bug)', re.compile(
        r'__init__\(\) (missing|got an unexpected)', re.I)),
)


def classify_reason(stock: Dict[str, Any], model_type: str = '') -> str:
    """Why the stock FPN model fails too, from its error (``error``,
    ``error_type``, ``stage``) and the model's type."""
    text = f'{stock.get("error_type", "")} {stock.get("error", "")}'
    for reason, pattern in REASONS:
        if pattern.search(text):
            return reason
    if model_type in SEMI_SUPERVISED:
        return ('semi-supervised: trains on multi-branch (supervised and '
                'unsupervised) batches, not a plain image batch')
    if model_type in VIDEO:
        return 'video / tracking model: needs video clips, not image batches'
    return (f'the stock FPN model fails too, at {stock.get("stage")} '
            '(the sweep\'s generic batch or CPU run does not fit this model)')


def reason_of(record: Dict[str, Any]) -> str:
    """:func:`classify_reason` of a not-runnable record (recomputed by the
    report, so that the classification can improve without a re-run)."""
    return classify_reason(
        dict(error=record.get('stock_error', ''),
             stage=record.get('stock_stage')), record.get('model_type', ''))


def attribute(fapn: Dict[str, Any], stock: Dict[str, Any],
              model_type: str = '') -> Tuple[str, Optional[str]]:
    """(status, reason) of a failed FaPN check given the stock model's
    check: not FaPN's fault when the stock model fails at the same or an
    earlier stage with the same exception type."""
    if 'stage' not in stock:
        return FAIL, None
    f_stage = STAGES.index(fapn['stage'])
    s_stage = STAGES.index(stock['stage'])
    if s_stage < f_stage or (s_stage == f_stage and stock.get('error_type')
                             == fapn.get('error_type')):
        return NOT_RUNNABLE, classify_reason(stock, model_type)
    return FAIL, None


def model_key(cfg) -> str:
    """A stable text of the config's model and custom imports (configs
    that differ only in data, schedule or runtime share it)."""
    import json
    return json.dumps([_plain(cfg.get('model')),
                       _plain(cfg.get('custom_imports'))],
                      sort_keys=True, default=repr)


def scan_config(name: str) -> Tuple[Dict[str, Any], Any]:
    """Load ``name`` and say whether (and where) it has an FPN; no model
    is built.  Returns (record, config or None); the record of a config
    without FPN (or that does not load) is final."""
    toolbox, _ = split_name(name)
    record = dict(config=name, toolbox=toolbox)
    try:
        cfg = load_stock_config(name)
    except Exception as e:  # a stock config that mmengine cannot load
        record.update(status=CONFIG_ERROR, error=_first_line(e))
        return record, None
    model_cfg = cfg.get('model')
    if not isinstance(model_cfg, dict):
        record.update(status=NO_FPN, necks=[])
        return record, cfg
    paths = find_fpns(model_cfg)
    record['necks'] = neck_types(model_cfg)
    if not paths:
        record['status'] = NO_FPN
        return record, cfg
    record.update(fpn_paths=paths, task=task_of(toolbox, model_cfg),
                  model_type=str(model_cfg.get('type')))
    return record, cfg


def check_config(name: str,
                 keep: Optional[dict] = None) -> Dict[str, Any]:
    """The full record of stock config ``name`` (see the module
    docstring): ``status`` ok / fail / not_runnable / no_fpn /
    config_error, the FaPN model's ``builds``, ``loss_ok``,
    ``predict_ok``, ``params_fapn``, ``seconds``, ``error``, the stock
    model's ``params_fpn`` and, where run, its ``stock_error``."""
    record, cfg = scan_config(name)
    if 'fpn_paths' not in record:
        return record
    toolbox = record['toolbox']
    imports = _plain(cfg.get('custom_imports'))
    stock_cfg = _plain(cfg.model)
    fapn = check_model(toolbox, swap_fpns(stock_cfg), imports,
                       expect_fapn=True, keep=keep)
    record.update(
        builds=fapn['builds'], loss_ok=fapn['loss_ok'],
        predict_ok=fapn['predict_ok'], params_fapn=fapn['params'],
        seconds=fapn['seconds'])
    if 'error' in fapn:
        record.update(error=fapn['error'], stage=fapn['stage'],
                      where=fapn['where'])
    if fapn['predict_ok']:
        record['status'] = OK
        record['params_fpn'] = _stock_params(toolbox, stock_cfg, imports,
                                             fapn)
        return record
    stock = check_model(toolbox, stock_cfg, imports, expect_fapn=False)
    record['params_fpn'] = stock['params']
    record['stock_seconds'] = stock['seconds']
    if 'error' in stock:
        record.update(stock_error=stock['error'], stock_stage=stock['stage'],
                      stock_where=stock['where'])
    record['status'], reason = attribute(fapn, stock,
                                         record.get('model_type', ''))
    if reason:
        record['reason'] = reason
    return record


def _stock_params(toolbox: str, stock_cfg: dict, imports,
                  fapn: Dict[str, Any]) -> Optional[int]:
    """Parameters of the stock FPN model: the FaPN model's, with each
    FaPN's replaced by its FPN's (each FPN built alone from its config),
    or, where the FaPN modules do not map one to one onto the FPN
    configs, of the whole stock model built (not run)."""
    from mmfapn.analysis.coverage_batch import BATCH_SHAPE
    fpn_cfgs = [_at(stock_cfg, path) for path in find_fpns(stock_cfg)]
    if fapn.get('fapn_params') is not None and \
            len(fapn['fapn_params']) == len(fpn_cfgs):
        try:
            from mmengine.registry import init_default_scope
            init_default_scope(toolbox)
            fpn = sum(count_params(importlib.import_module(
                f'{toolbox}.registry').MODELS.build(copy.deepcopy(c)))
                for c in fpn_cfgs)
            return fapn['params'] - sum(fapn['fapn_params']) + fpn
        except Exception:  # e.g. an odd nesting: build the whole model
            pass
    try:
        model = build_model(toolbox, prepare_model_cfg(
            toolbox, stock_cfg, BATCH_SHAPE), imports, init=False)
    except Exception:  # counted only; a build failure shows elsewhere
        return None
    return count_params(model)


"""Shrink a config for a smoke run on CPU: small images, small batches, a
couple of iterations, no pretrained weights, no worker processes.

What stays: the model (depth, heads, losses), every transform of the
pipelines (only their sizes change), the optimiser, the schedulers, the
evaluators and the hooks.  What changes:

* sizes: every ``scale``, ``scales``, ``crop_size`` and padding ``size`` in
  the pipelines (nested ``transforms`` included), the data preprocessor's
  ``size`` and batch augments, and mmseg's sliding-window ``crop_size`` /
  ``stride`` are multiplied by one factor, ``image_size / longest side``
  (the longest side of the training crop, or else of the test resize), so
  that crops stay inside resized images as in the config;
* ``init_cfg=dict(type='Pretrained', ...)`` and ``pretrained=...`` in the
  model become None (training from scratch), ``load_from`` and ``resume``
  are dropped;
* the training loop runs ``iters`` iterations (one epoch of ``iters``
  batches for epoch-based configs, whose toy dataset has ``iters *
  batch_size`` images), validates once at the end and saves one
  checkpoint (weights only, no optimizer state); the logger logs every
  iteration;
* dataloaders: ``batch_size`` for training, 1 for evaluation, no worker
  processes, ``RepeatDataset`` once; ``auto_scale_lr`` is off;
* detectors keep every detection (``score_thr=0`` in the model's test
  settings), so that the COCO metrics of an untrained model have boxes.
"""
from typing import Iterable, List, Tuple

from mmengine.config import Config, ConfigDict

from .smoke_data import LOADERS

# transform keys holding an (h, w) / (w, h) size or a list of them
_SIZE_KEYS = ('scale', 'scales', 'crop_size', 'img_scale')
_PAD_TYPES = ('Pad', 'BatchFixedSizePad')


def _is_size(value) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value))


def _sizes(value) -> List[int]:
    """The ints of a size or of a list of sizes (floats: relative, none)."""
    if _is_size(value):
        return [value] if isinstance(value, int) else list(value)
    if isinstance(value, (tuple, list)) and all(_is_size(v) for v in value):
        return [i for v in value for i in _sizes(v)]
    return []


def _scale(value, factor: float, minimum: int):
    if isinstance(value, int) and not isinstance(value, bool):
        return max(minimum, int(round(value * factor)))
    if _is_size(value):
        return type(value)(_scale(v, factor, minimum) for v in value)
    if isinstance(value, (tuple, list)) and all(_is_size(v) for v in value):
        return type(value)(_scale(v, factor, minimum) for v in value)
    return value


def _transforms(node) -> Iterable[ConfigDict]:
    """Every transform dict of a pipeline, nested ones included."""
    if isinstance(node, (list, tuple)):
        for item in node:
            yield from _transforms(item)
    elif isinstance(node, (dict, ConfigDict)):
        yield node
        for key in ('transforms', 'transform'):
            if key in node:
                yield from _transforms(node[key])


def _size_keys(t) -> Tuple[str, ...]:
    keys = _SIZE_KEYS
    if str(t.get('type', '')).split('.')[-1] in _PAD_TYPES:
        keys = keys + ('size', )
    return tuple(k for k in keys if k in t)


def _pipelines(cfg: Config) -> List[list]:
    from .smoke_data import leaf_datasets
    found = []
    for loader in LOADERS:
        loader_cfg = cfg.get(loader)
        if not isinstance(loader_cfg, (dict, ConfigDict)):
            continue
        for ds in leaf_datasets(loader_cfg.get('dataset')):
            if isinstance(ds.get('pipeline'), (list, tuple)):
                found.append(ds['pipeline'])
        # wrappers (e.g. MultiImageMixDataset) have their own pipeline
        outer = loader_cfg.get('dataset')
        if isinstance(outer, (dict, ConfigDict)) and 'dataset' in outer and \
                isinstance(outer.get('pipeline'), (list, tuple)):
            found.append(outer['pipeline'])
    return found


def longest_side(cfg: Config) -> int:
    """The longest side the config trains at: of its training crop (the
    pipeline's ``crop_size`` or the data preprocessor's ``size``), else of
    its test resize; 0 if it names no size."""
    model = cfg.get('model', {})
    crops = _sizes(model.get('data_preprocessor', {}).get('size'))
    train = cfg.get('train_dataloader', {})
    from .smoke_data import leaf_datasets
    for ds in leaf_datasets(train.get('dataset') if train else None):
        for t in _transforms(ds.get('pipeline', [])):
            crops += _sizes(t.get('crop_size'))
    if crops:
        return max(crops)
    scales = []
    for loader in ('val_dataloader', 'test_dataloader', 'train_dataloader'):
        loader_cfg = cfg.get(loader)
        if not isinstance(loader_cfg, (dict, ConfigDict)):
            continue
        for ds in leaf_datasets(loader_cfg.get('dataset')):
            for t in _transforms(ds.get('pipeline', [])):
                for key in _size_keys(t):
                    scales += _sizes(t[key])
        if scales:
            return max(scales)
    return 0


def scale_sizes(cfg: Config, factor: float, minimum: int = 8) -> None:
    """Multiply every image size of ``cfg`` by ``factor`` (in place; see
    the module docstring for which)."""
    for pipeline in _pipelines(cfg):
        for t in _transforms(pipeline):
            for key in _size_keys(t):
                t[key] = _scale(t[key], factor, minimum)
    model = cfg.get('model')
    if not isinstance(model, (dict, ConfigDict)):
        return
    pre = model.get('data_preprocessor')
    if isinstance(pre, (dict, ConfigDict)):
        if _is_size(pre.get('size')):
            pre.size = _scale(pre.size, factor, minimum)
        for aug in pre.get('batch_augments') or []:
            for key in ('size', 'img_scale'):
                if _is_size(aug.get(key)):
                    aug[key] = _scale(aug[key], factor, minimum)
    test_cfg = model.get('test_cfg')
    if isinstance(test_cfg, (dict, ConfigDict)):  # mmseg's slide inference
        for key in ('crop_size', 'stride'):
            if _is_size(test_cfg.get(key)):
                test_cfg[key] = _scale(test_cfg[key], factor, 1)


def _is_epoch_based(train_cfg) -> bool:
    loop = str(train_cfg.get('type', ''))
    if loop:
        return 'Epoch' in loop
    return bool(train_cfg.get('by_epoch', False))


def shrink_schedule(cfg: Config, iters: int) -> bool:
    """``iters`` training iterations, one validation at the end, one
    checkpoint (in place).  Returns whether the loop is epoch-based (its
    toy dataset must then have ``iters * batch_size`` images)."""
    train_cfg = cfg.get('train_cfg')
    if not isinstance(train_cfg, (dict, ConfigDict)):
        raise ValueError('the config has no train_cfg (training loop)')
    by_epoch = _is_epoch_based(train_cfg)
    for key in ('dynamic_intervals', 'val_begin'):
        train_cfg.pop(key, None)
    if by_epoch:
        train_cfg.pop('max_iters', None)
        train_cfg.update(max_epochs=1, val_interval=1)
    else:
        train_cfg.pop('max_epochs', None)
        train_cfg.update(max_iters=iters, val_interval=iters)
    hooks = cfg.setdefault('default_hooks', ConfigDict())
    if isinstance(hooks.get('logger'), (dict, ConfigDict)):
        hooks.logger.interval = 1
    if isinstance(hooks.get('checkpoint'), (dict, ConfigDict)):
        # weights and meta only: a smoke checkpoint is for testing, and the
        # optimizer state would double or triple its size and saving time
        hooks.checkpoint.update(
            interval=1 if by_epoch else iters, by_epoch=by_epoch,
            max_keep_ckpts=1, save_optimizer=False,
            save_param_scheduler=False)
        hooks.checkpoint.pop('save_best', None)  # no best of one run
    if isinstance(hooks.get('visualization'), (dict, ConfigDict)):
        hooks.visualization.draw = False
    if isinstance(cfg.get('auto_scale_lr'), (dict, ConfigDict)):
        cfg.auto_scale_lr.enable = False
    return by_epoch


def shrink_loaders(cfg: Config, batch_size: int) -> None:
    """``batch_size`` for training, 1 for evaluation, no worker processes
    (in place)."""
    for loader in LOADERS:
        loader_cfg = cfg.get(loader)
        if not isinstance(loader_cfg, (dict, ConfigDict)):
            continue
        loader_cfg.batch_size = (
            batch_size if loader == 'train_dataloader' else 1)
        loader_cfg.num_workers = 0
        loader_cfg.persistent_workers = False
        loader_cfg.pop('prefetch_factor', None)
        # RepeatDataset: one pass over the toy images is the epoch
        dataset = loader_cfg.get('dataset')
        while isinstance(dataset, (dict, ConfigDict)):
            if 'times' in dataset:
                dataset.times = 1
            dataset = dataset.get('dataset')


def keep_all_detections(model_cfg) -> int:
    """Set every ``score_thr`` of the model's test settings to 0 (in
    place): an untrained detector scores all its boxes below the stock
    0.05, and a COCO metric given no detection reports nothing.  Returns
    how many were changed."""
    changed = 0

    def visit(node, in_test_cfg):
        nonlocal changed
        if isinstance(node, (dict, ConfigDict)):
            for key, value in node.items():
                if in_test_cfg and key == 'score_thr' and isinstance(
                        value, (int, float)):
                    node[key] = 0.0
                    changed += 1
                else:
                    visit(value, in_test_cfg or key == 'test_cfg')
        elif isinstance(node, (list, tuple)):
            for value in node:
                visit(value, in_test_cfg)

    visit(model_cfg, False)
    return changed

"""Smoke-run a config on CPU: toy data, a couple of iterations through
mmengine's Runner, evaluation with the config's own metrics.

``tools/misc/smoke_run.py`` (and ``make smoke CONFIG=...``) is the command
line.  :func:`smoke_run`:

1. loads the config (mmdet or mmseg, a shipped one or a user's config
   that inherits one) with :func:`mmfapn.engine.load_config`;
2. finds the dataset it reads and writes a toy dataset in that format
   (:mod:`mmfapn.apis.smoke_data`), then points the dataloaders and the
   COCO metrics at it;
3. shrinks sizes, batches, schedule and pretrained initialisation
   (:mod:`mmfapn.apis.smoke_config`), then applies ``cfg_options``;
4. trains with the config's runner (``runner_type`` or mmengine's), which
   validates once at the end and saves a checkpoint, then runs the test
   loop; the metrics of both are returned.
"""
import os.path as osp
import time
from typing import Dict, List, Optional

from mmengine.hooks import Hook

from mmfapn.engine.atomic_checkpoint import find_latest_checkpoint

from .inference import drop_pretrained
from .smoke_config import (keep_all_detections, longest_side, scale_sizes,
                           shrink_loaders, shrink_schedule)
from .smoke_data import (dataset_kind, point_config_at, toy_data_summary,
                         write_toy_dataset)

DEFAULT_WORK_ROOT = osp.join('work_dirs', 'smoke')


class _KeepMetrics(Hook):
    """Keeps the metrics of the validation and test loops."""
    priority = 'LOWEST'

    def __init__(self) -> None:
        self.val: Optional[Dict] = None
        self.test: Optional[Dict] = None

    def after_val_epoch(self, runner, metrics=None) -> None:
        self.val = dict(metrics or {})

    def after_test_epoch(self, runner, metrics=None) -> None:
        self.test = dict(metrics or {})


def prepare_smoke_config(config: str,
                         work_dir: Optional[str] = None,
                         iters: int = 2,
                         image_size: int = 128,
                         batch_size: int = 2,
                         num_val: int = 2,
                         data_root: Optional[str] = None,
                         cfg_options: Optional[dict] = None,
                         seed: int = 0):
    """The shrunk config of a smoke run, with its toy data written.

    Args:
        config (str): config file.
        work_dir (str, optional): where logs, checkpoint and (unless
            ``data_root``) the toy data go; default
            ``work_dirs/smoke/<config name>``.
        iters (int): training iterations (>= 1).
        image_size (int): longest side of the training crop (or of the
            test resize) after shrinking (>= 16).
        batch_size (int): training batch size (>= 1).
        num_val (int): images of the evaluation split (>= 1).
        data_root (str, optional): where to write the toy dataset; default
            ``<work_dir>/data/<kind>``.
        cfg_options (dict, optional): overrides applied last (mmengine's
            ``key=value`` dict, as ``--cfg-options``).
        seed (int): seed of the toy data and of the run.

    Returns:
        tuple: ``(cfg, info)``; info has ``kind``, ``data`` (the writer's
        description), ``dropped`` (pretrained checkpoints not loaded),
        ``factor`` (size multiplier) and ``by_epoch``.

    Raises:
        FileNotFoundError: no such config.
        ValueError: a bad argument, or a config the smoke run cannot
            handle (named in the message).
    """
    for name, value, low in (('iters', iters, 1), ('image_size', image_size,
                                                   16),
                             ('batch_size', batch_size, 1),
                             ('num_val', num_val, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or \
                value < low:
            raise ValueError(f'{name} must be an int >= {low}, got {value!r}')
    from mmfapn.engine import load_config
    if work_dir is None:
        work_dir = osp.join(DEFAULT_WORK_ROOT,
                            osp.splitext(osp.basename(config))[0])
    cfg = load_config(config, work_dir=work_dir)
    kind = dataset_kind(cfg)
    by_epoch = shrink_schedule(cfg, iters)
    shrink_loaders(cfg, batch_size)
    # an epoch of `iters` batches; an iteration-based loop cycles anyway
    num_train = iters * batch_size if by_epoch else batch_size
    root = data_root or osp.join(cfg.work_dir, 'data', kind)
    data = write_toy_dataset(kind, root, num_train=num_train,
                             num_val=num_val, seed=seed)
    point_config_at(cfg, kind, root)
    longest = longest_side(cfg)
    factor = image_size / longest if longest else 1.0
    scale_sizes(cfg, factor)
    dropped = drop_pretrained(cfg.model)
    keep_all_detections(cfg.model)
    cfg.load_from, cfg.resume = None, False
    cfg.randomness = dict(seed=seed)
    cfg.setdefault('env_cfg', {})['cudnn_benchmark'] = False
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    info = dict(kind=kind, data=data, dropped=dropped, factor=factor,
                by_epoch=by_epoch)
    return cfg, info


def smoke_run(config: str,
              work_dir: Optional[str] = None,
              iters: int = 2,
              image_size: int = 128,
              batch_size: int = 2,
              num_val: int = 2,
              data_root: Optional[str] = None,
              cfg_options: Optional[dict] = None,
              test: bool = True,
              seed: int = 0) -> Dict:
    """Train ``config`` for ``iters`` iterations on toy data on CPU and
    evaluate it (arguments as :func:`prepare_smoke_config`; ``test``: also
    run the test loop after training).

    Returns:
        dict: ``config`` (the file), ``scope``, ``model`` (class name),
        ``kind``, ``data_root``, ``iters``, ``val`` and ``test`` metrics
        (None when not run), ``checkpoint``, ``log_file``,
        ``config_dump`` (the shrunk config, reusable with
        ``tools/train.py``), ``work_dir``, ``dropped``, ``seconds``.
    """
    start = time.perf_counter()
    cfg, info = prepare_smoke_config(
        config, work_dir=work_dir, iters=iters, image_size=image_size,
        batch_size=batch_size, num_val=num_val, data_root=data_root,
        cfg_options=cfg_options, seed=seed)
    from mmfapn.engine import build_runner
    runner = build_runner(cfg)
    keep = _KeepMetrics()
    runner.register_hook(keep)
    runner.train()
    if test and cfg.get('test_dataloader') and cfg.get('test_evaluator'):
        runner.test()
    model = runner.model.module if hasattr(runner.model, 'module') else \
        runner.model
    dump = osp.join(runner.work_dir, osp.basename(cfg.filename)) \
        if cfg.filename else None
    return dict(
        config=config,
        scope=cfg.default_scope,
        model=type(model).__name__,
        kind=info['kind'],
        data_root=info['data']['root'],
        data=info['data'],
        iters=runner.iter,
        val=keep.val,
        test=keep.test,
        checkpoint=find_latest_checkpoint(runner.work_dir),
        log_file=osp.join(runner.log_dir, f'{runner.timestamp}.log'),
        config_dump=dump if dump and osp.isfile(dump) else None,
        work_dir=runner.work_dir,
        dropped=info['dropped'],
        seconds=time.perf_counter() - start)


def _format_metrics(metrics: Optional[Dict], limit: int = 8) -> str:
    if metrics is None:
        return 'not run'
    items: List[str] = []
    for key, value in metrics.items():
        if isinstance(value, float):
            items.append(f'{key}={value:.4g}')
        elif isinstance(value, (int, str)):
            items.append(f'{key}={value}')
    more = f' (+{len(items) - limit} more)' if len(items) > limit else ''
    return ', '.join(items[:limit]) + more if items else '(no metric)'


def summary_lines(result: Dict) -> List[str]:
    """What the command line prints at the end of a smoke run."""
    lines = [
        f'smoke run OK: {result["config"]} ({result["model"]}, '
        f'{result["scope"]}): {result["iters"]} training iterations on '
        f'{toy_data_summary(result["kind"], result["data"])} in '
        f'{result["seconds"]:.1f} s',
        f'  val:        {_format_metrics(result["val"])}',
        f'  test:       {_format_metrics(result["test"])}',
        f'  checkpoint: {result["checkpoint"]}',
        f'  log:        {result["log_file"]}',
        f'  config:     {result["config_dump"]}',
    ]
    if result['dropped']:
        lines.append('  not loaded (trained from scratch): ' +
                     ', '.join(sorted(set(result['dropped']))))
    return lines

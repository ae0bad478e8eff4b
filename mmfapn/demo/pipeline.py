"""``make demo``: does FaPN help?  FPN vs FaPN over K paired seeds, on CPU.

Protocol (fixed before any result is seen; the report repeats it):

1. generate three disjoint splits of boundary-heavy synthetic scenes in
   the Cityscapes on-disk format (:mod:`mmfapn.demo.splits`): train, val
   and test.  Every recipe choice (learning rates, the offset/mask conv
   learning-rate multiplier, iterations, crop) was made on val
   (docs/demo.md); the reported numbers are on test;
2. for each of K seeds (default 3): draw one backbone initialisation
   (:mod:`mmfapn.demo.pairing`), then train FPN and FaPN from it through
   mmengine's Runner (the code path of ``mim train``) with the same data
   order and schedule, and evaluate each on the test split (mmseg's
   ``IoUMetric`` and mmfapn's ``BoundaryIoUMetric``: bIoU@3/5/8/12);
3. per model, mean +- std over seeds; the paired difference FaPN - FPN
   with a 95% Student-t interval over seeds; a verdict sentence that
   follows from the intervals (:mod:`mmfapn.demo.statistics`);
4. figures (last seed's checkpoints, first test images, not selected):
   predictions with boundary errors, FaPN's alignment, the overview, and
   bIoU@n against n with error bars; per-FAM offset statistics of every
   seed's FaPN on the first test images;
5. ``report.md`` and ``report.json`` in the work directory.

The two configs differ only in the neck; everything else (backbone, head,
data, schedule, optimiser) is inherited from one base, and the demo
applies the same overrides to both.  ``--split val`` runs the same
protocol on val, for choosing a recipe (its report says so).
"""
import copy
import gc
import json
import os
import os.path as osp
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence

from mmfapn.utils.config_files import config_path, display_path

from .progress import DemoProgress, DemoProgressHook, format_seconds

# shipped with the package (mmfapn/.mim/configs), so an installed mmfapn
# runs the demo without the repository
DEMO_CONFIGS = config_path(osp.join('seg', 'demo'))
FPN_CONFIG = osp.join(DEMO_CONFIGS, 'sem-fpn_r18_fpn_toycity-demo.py')
FAPN_CONFIG = osp.join(DEMO_CONFIGS, 'sem-fpn_r18_fapn_toycity-demo.py')
WIDTHS = (3, 5, 8, 12)
METRIC_KEYS = ('mIoU', 'bIoU@3', 'bIoU@5', 'bIoU@8', 'bIoU@12', 'bIoU')
# the verdict's metrics: region accuracy and the boundary mean
VERDICT_KEYS = ('mIoU', 'bIoU')
EVAL_SPLITS = ('test', 'val')
# test images whose FAM offsets are summarised per seed
NUM_OFFSET_IMAGES = 8


@dataclass
class DemoOptions:
    """What to run.

    Attributes:
        work_dir: everything goes here (data, runs, figures, report).
        iters: training iterations per run (the configs' schedules,
            warm-up included, are rescaled to it).
        batch_size: training batch size (None: the config's).
        num_train, num_val: generated images of the train and val splits.
        num_test: images of the test split (None: ``num_val``).
        num_classes: Cityscapes train ids used (road + objects), 2..19.
        seeds: K, the number of paired seeds.
        seed: the first training seed (seeds ``seed .. seed + K - 1``).
        data_seed: seed of the generated splits (the same for all runs).
        split: where the runs are evaluated: ``'test'`` (the protocol's
            result) or ``'val'`` (for choosing a recipe).
        offset_lr_mult: override the offset/mask conv learning-rate
            multiplier of the configs' ``paramwise_cfg`` (None: keep it).
        fpn_config, fapn_config: the two configs (mmseg, same recipe).
        labels: names of the two models in the report.
        num_figures: test images in the comparison figure.
        threads: torch CPU threads (None: torch's default).
        log_interval: iterations between progress lines (None: about 10
            lines per run).
        verbose: also print mmengine's own log on the console (it always
            goes to each run's log file).
    """
    work_dir: str = 'work_dirs/demo'
    iters: int = 300
    batch_size: Optional[int] = None
    num_train: int = 300
    num_val: int = 100
    num_test: Optional[int] = None
    num_classes: int = 8
    seeds: int = 3
    seed: int = 0
    data_seed: int = 0
    split: str = 'test'
    offset_lr_mult: Optional[float] = None
    fpn_config: str = FPN_CONFIG
    fapn_config: str = FAPN_CONFIG
    labels: Sequence[str] = ('FPN', 'FaPN')
    num_figures: int = 4
    threads: Optional[int] = None
    log_interval: Optional[int] = None
    verbose: bool = False

    @property
    def test_size(self) -> int:
        return self.num_val if self.num_test is None else self.num_test

    @property
    def seed_list(self) -> List[int]:
        return list(range(self.seed, self.seed + self.seeds))

    def check(self) -> None:
        for name in ('iters', 'num_train', 'num_val', 'num_figures',
                     'seeds'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) \
                    or value < 1:
                raise ValueError(f'{name} must be a positive int, got '
                                 f'{value!r}')
        if self.num_test is not None and (
                isinstance(self.num_test, bool)
                or not isinstance(self.num_test, int) or self.num_test < 1):
            raise ValueError(f'num_test must be a positive int, got '
                             f'{self.num_test!r}')
        for name in ('seed', 'data_seed'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) \
                    or value < 0:
                raise ValueError(f'{name} must be an int >= 0, got '
                                 f'{value!r}')
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got '
                             f'{self.batch_size}')
        if self.threads is not None and self.threads < 1:
            raise ValueError(f'threads must be >= 1, got {self.threads}')
        if not 2 <= self.num_classes <= 19:
            raise ValueError('num_classes must be in [2, 19] (Cityscapes '
                             f'train ids), got {self.num_classes}')
        if self.split not in EVAL_SPLITS:
            raise ValueError(f'split must be one of {EVAL_SPLITS}, got '
                             f'{self.split!r}')
        if self.offset_lr_mult is not None and not self.offset_lr_mult > 0:
            raise ValueError(f'offset_lr_mult must be > 0, got '
                             f'{self.offset_lr_mult!r}')
        for path in (self.fpn_config, self.fapn_config):
            if not osp.isfile(path):
                raise FileNotFoundError(f'config file not found: {path!r}')
        if len(self.labels) != 2 or len(set(self.labels)) != 2:
            raise ValueError(f'labels must be two distinct names, got '
                             f'{self.labels!r}')


@dataclass
class RunResult:
    """One trained and evaluated model."""
    label: str
    seed: int
    config: str
    work_dir: str
    checkpoint: str
    params: int
    iters: int
    batch_size: int
    train_seconds: float
    val_seconds: float
    backbone_init: str
    backbone_digest: str
    data_digest: str
    metrics: Dict[str, float] = field(default_factory=dict)


def _rescale_schedule(cfg, iters: int) -> None:
    """Set ``max_iters`` and rescale every iteration-based scheduler's
    ``begin``/``end`` (warm-up included), validation and checkpoint to the
    end of training."""
    old = cfg.train_cfg.get('max_iters')
    if old is None or cfg.train_cfg.get('type') != 'IterBasedTrainLoop':
        raise ValueError('the demo needs an iteration-based config '
                         f"(IterBasedTrainLoop with max_iters), got "
                         f'{cfg.train_cfg}')
    factor = iters / old
    schedulers = cfg.get('param_scheduler') or []
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    for s in schedulers:
        if s.get('by_epoch', True):
            raise ValueError(f'param_scheduler {s.get("type")} is epoch-'
                             'based; the demo rescales iteration-based ones')
        s.begin = int(round(s.get('begin', 0) * factor))
        s.end = min(iters, max(s.begin + 1,
                               int(round(s.get('end', old) * factor))))
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = iters
    cfg.default_hooks.checkpoint.interval = iters
    cfg.default_hooks.checkpoint.by_epoch = False


def set_offset_lr_mult(cfg, mult: float) -> List[str]:
    """Set the ``lr_mult`` of every ``custom_keys`` entry of the config's
    ``optim_wrapper.paramwise_cfg`` (the offset/mask conv keys of
    configs/_base_/fapn_offset_lr.py) to ``mult``; returns the keys."""
    custom = (cfg.optim_wrapper.get('paramwise_cfg') or {}).get(
        'custom_keys') or {}
    if not custom:
        raise ValueError('offset_lr_mult: the config has no '
                         'optim_wrapper.paramwise_cfg.custom_keys (inherit '
                         'configs/_base_/fapn_offset_lr.py)')
    for key in custom:
        custom[key]['lr_mult'] = float(mult)
    return list(custom)


def configure_run(cfg, opts: DemoOptions, label: str, data_root: str,
                  work_dir: str, seed: Optional[int] = None,
                  backbone_init: Optional[str] = None,
                  progress: Optional[DemoProgress] = None
                  ) -> DemoProgressHook:
    """Apply the demo's overrides (the same for both models of a seed) to
    ``cfg`` in place; returns the progress hook to add.

    Training reads the train split; validation and test read
    ``opts.split``.  ``backbone_init``: the seed's backbone weights
    (:func:`mmfapn.demo.pairing.write_backbone_init`)."""
    seed = opts.seed if seed is None else seed
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(key) is not None:
            cfg[key].dataset.data_root = data_root
    cfg.train_dataloader.dataset.data_prefix = dict(
        img_path='leftImg8bit/train', seg_map_path='gtFine/train')
    for key in ('val_dataloader', 'test_dataloader'):
        if cfg.get(key) is not None:
            cfg[key].dataset.data_prefix = dict(
                img_path=f'leftImg8bit/{opts.split}',
                seg_map_path=f'gtFine/{opts.split}')
    if opts.batch_size is not None:
        cfg.train_dataloader.batch_size = opts.batch_size
    if opts.offset_lr_mult is not None:
        set_offset_lr_mult(cfg, opts.offset_lr_mult)
    if backbone_init is not None:
        cfg.model.backbone.init_cfg = dict(
            type='Pretrained', checkpoint=backbone_init)
    _rescale_schedule(cfg, opts.iters)
    cfg.work_dir = work_dir
    cfg.randomness = dict(seed=seed)
    stamp = time.strftime('%Y%m%d_%H%M%S')
    # unique names: mmengine keeps loggers/visualizers per name
    cfg.experiment_name = f'{label}_s{seed}_{stamp}_{time.time_ns() % 10**9}'
    if cfg.get('visualizer') is not None:
        cfg.visualizer.name = f'demo_{cfg.experiment_name}'
    if not opts.verbose:
        cfg.log_level = 'WARNING'
    interval = opts.log_interval or max(1, opts.iters // 10)
    # registered on the Runner object, not in the config: the config the
    # Runner dumps stays usable by `mim train`/`tools/train.py` as is
    return DemoProgressHook(f'seed {seed} {label}', interval=interval,
                            progress=progress, model=label)


def run_dir(opts: DemoOptions, seed: int, label: str) -> str:
    return osp.join(opts.work_dir, 'runs', f'seed{seed}', label.lower())


def build_demo_runner(opts: DemoOptions, label: str, config: str,
                      data_root: str, seed: int, backbone_init: str,
                      progress: Optional[DemoProgress] = None):
    """The Runner of one run, as the demo trains it: ``(runner,
    progress hook, pairing hook)``."""
    import shutil

    from mmfapn.engine import build_runner, load_config

    from .pairing import PairingHook
    work_dir = run_dir(opts, seed, label)
    if osp.isdir(work_dir):  # a stale checkpoint must not be reported
        shutil.rmtree(work_dir)
    cfg = load_config(config, work_dir=work_dir)
    hook = configure_run(cfg, opts, label, data_root, work_dir, seed=seed,
                         backbone_init=backbone_init, progress=progress)
    runner = build_runner(cfg)
    pairing = PairingHook()
    runner.register_hook(hook)
    runner.register_hook(pairing)
    if not opts.verbose:  # keep mmengine's INFO log in the file only
        for h in runner.logger.handlers:
            if hasattr(h, 'baseFilename'):
                h.setLevel('INFO')
    return runner, hook, pairing


def train_one(opts: DemoOptions, label: str, config: str, data_root: str,
              seed: int, backbone_init: str,
              progress: Optional[DemoProgress] = None) -> RunResult:
    """Train one config from the seed's backbone initialisation and
    evaluate it on ``opts.split`` through mmengine's Runner."""
    runner, hook, pairing = build_demo_runner(
        opts, label, config, data_root, seed, backbone_init, progress)
    cfg = runner.cfg
    params = sum(p.numel() for p in runner.model.parameters())
    print(f'  seed {seed} {label}: {display_path(config)} '
          f'({params:,} parameters), {opts.iters} iterations of batch '
          f'{cfg.train_dataloader.batch_size}', flush=True)
    runner.train()
    hub = runner.message_hub
    metrics = {}
    for key in METRIC_KEYS:
        if f'val/{key}' in hub.log_scalars:
            metrics[key] = float(hub.get_scalar(f'val/{key}').current())
    missing = [k for k in METRIC_KEYS if k not in metrics]
    if missing:
        raise RuntimeError(f'{label}: the evaluation did not report '
                           f'{missing}; the config\'s val_evaluator must '
                           'include IoUMetric and BoundaryIoUMetric')
    checkpoint = osp.join(cfg.work_dir, f'iter_{opts.iters}.pth')
    if not osp.isfile(checkpoint):
        raise RuntimeError(f'{label}: expected checkpoint {checkpoint}')
    result = RunResult(
        label=label,
        seed=seed,
        config=display_path(config),
        work_dir=cfg.work_dir,
        checkpoint=checkpoint,
        params=params,
        iters=opts.iters,
        batch_size=cfg.train_dataloader.batch_size,
        train_seconds=hook.train_seconds,
        val_seconds=hook.val_seconds,
        backbone_init=backbone_init,
        backbone_digest=pairing.backbone_digest,
        data_digest=pairing.data_digest,
        metrics=metrics)
    del runner
    gc.collect()
    return result


def check_pairing(runs: Sequence[RunResult]) -> None:
    """Raise if the runs of one seed did not start from the same backbone
    weights or did not see the same batches."""
    by_seed: Dict[int, List[RunResult]] = {}
    for r in runs:
        by_seed.setdefault(r.seed, []).append(r)
    for seed, group in by_seed.items():
        for attr, what in (('backbone_digest', 'backbone weights'),
                           ('data_digest', 'training batches')):
            values = {getattr(r, attr) for r in group}
            if len(values) != 1:
                raise RuntimeError(
                    f'seed {seed}: the runs are not paired, their {what} '
                    f'differ ({", ".join(r.label for r in group)})')


def _dumped_config(run: RunResult, config: str) -> str:
    """The config the Runner dumped into the run's work directory (with the
    demo's overrides), for reloading the checkpoint as a user would."""
    path = osp.join(run.work_dir, osp.basename(config))
    return path if osp.isfile(path) else config


def offset_statistics(run: RunResult, config: str,
                      num_images: int = NUM_OFFSET_IMAGES) -> List[dict]:
    """Per FAM (finest first) of one FaPN checkpoint, over the first
    ``num_images`` images of its evaluation split: mean of the per-image
    mean displacement, max of the per-image max displacement (px of the
    FAM's map), mean raw offset length and mean mask."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS

    from mmfapn.apis import load_model, predict
    from mmfapn.visualization.alignment import (AlignmentRecorder,
                                                displacement_stats)
    from mmfapn.visualization.drawing import read_rgb
    model = load_model(_dumped_config(run, config), run.checkpoint)
    init_default_scope('mmseg')
    dataset = DATASETS.build(copy.deepcopy(model.cfg.val_dataloader.dataset))
    per_fam: Dict[str, List[dict]] = {}
    strides: Dict[str, int] = {}
    for i in range(min(num_images, len(dataset))):
        image = read_rgb(dataset.get_data_info(i)['img_path'])
        recorder = AlignmentRecorder(model)
        with recorder:
            pred = predict(model, image)
        for rec in recorder.records:
            s = displacement_stats(rec, valid=pred.valid_size(rec.size))
            per_fam.setdefault(rec.name, []).append(s)
            strides[rec.name] = int(
                round(pred.input_shape[1] / rec.size[1]))
    out = []
    for name in sorted(per_fam, key=lambda n: strides[n]):
        items = per_fam[name]
        out.append(dict(
            name=name,
            stride=strides[name],
            num_images=len(items),
            mean_displacement_px=sum(s['mean_displacement_px']
                                     for s in items) / len(items),
            max_displacement_px=max(s['max_displacement_px'] for s in items),
            mean_raw_offset_px=sum(s['mean_raw_offset_px']
                                   for s in items) / len(items),
            mean_mask=sum(s['mean_mask'] for s in items) / len(items)))
    del model
    gc.collect()
    return out


def make_figures(opts: DemoOptions, runs: List[RunResult],
                 configs: Sequence[str]) -> dict:
    """Reload the two checkpoints of one seed (``runs``: first model,
    second model) and draw the comparison, alignment and overview figures
    into ``<work_dir>/figures``; returns their paths and the alignment
    statistics of the first image."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS

    from mmfapn.apis import load_model, predict
    from mmfapn.visualization.alignment_figure import (save_alignment,
                                                       visualize_alignment)
    from mmfapn.visualization.compare import (compare_figure,
                                              load_ground_truth, pick_indices)
    from mmfapn.visualization.drawing import (grid, make_palette, read_rgb,
                                              titled, write_png)
    fig_dir = osp.join(opts.work_dir, 'figures')
    os.makedirs(fig_dir, exist_ok=True)
    models = [
        load_model(_dumped_config(r, c), r.checkpoint)
        for r, c in zip(runs, configs)
    ]
    cfg = models[0].cfg
    init_default_scope('mmseg')
    dataset = DATASETS.build(copy.deepcopy(cfg.val_dataloader.dataset))
    num_classes = models[0].decode_head.num_classes
    palette = make_palette(num_classes,
                           (models[0].dataset_meta or {}).get('palette'))
    samples = []
    for i in pick_indices(opts.num_figures, len(dataset)):
        img_path, gt = load_ground_truth(dataset, i)
        image = read_rgb(img_path)
        preds = [
            predict(m, image).result.pred_sem_seg.data[0].cpu().numpy()
            for m in models
        ]
        samples.append(dict(image=image, gt=gt, preds=preds,
                            name=f'{opts.split} {i}'))
    figure, scores = compare_figure(samples, list(opts.labels), num_classes,
                                    palette)
    compare_path = write_png(osp.join(fig_dir, 'compare.png'), figure)
    vis = visualize_alignment(models[1], samples[0]['image'])
    align_paths = save_alignment(vis, osp.join(fig_dir, 'alignment'))
    # overview (README picture): the first comparison row, then the finest
    # FAM's before / after / offsets
    first, _ = compare_figure(samples[:1], list(opts.labels), num_classes,
                              palette)
    key = next(k[:-len('_before')] for k in vis.panels
               if k.endswith('_before'))
    stride = key.split('_s')[-1]
    row2 = [
        titled(vis.panels[f'{key}_before'], f'FaPN 1/{stride}: before FAM'),
        titled(vis.panels[f'{key}_after'], 'after FAM (aligned)'),
        titled(vis.panels[f'{key}_offsets'], 'FAM offsets (colour)'),
        titled(vis.panels[f'{key}_arrows'], 'FAM offsets (arrows)'),
    ]
    overview = grid([[first], [grid([row2])]])
    overview_path = write_png(osp.join(fig_dir, 'overview.png'), overview)
    del models
    gc.collect()
    return dict(
        seed=runs[0].seed,
        compare=compare_path,
        alignment=align_paths[0],
        overview=overview_path,
        alignment_stats=vis.stats,
        figure_scores=scores,
        figure_sizes={
            'compare': list(figure.shape[:2]),
            'alignment': list(vis.figure.shape[:2]),
            'overview': list(overview.shape[:2])
        })


def summarize(runs: Sequence[RunResult], labels: Sequence[str],
              confidence: float = 0.95) -> dict:
    """Per-seed rows, mean +- std per model and the paired differences
    ``labels[1] - labels[0]`` with their t-intervals."""
    from .statistics import mean_std, t_interval
    a, b = labels
    by = {(r.seed, r.label): r for r in runs}
    seeds = sorted({r.seed for r in runs})
    rows = []
    for s in seeds:
        ra, rb = by[(s, a)], by[(s, b)]
        rows.append(dict(
            seed=s,
            **{a: dict(ra.metrics), b: dict(rb.metrics)},
            difference={k: rb.metrics[k] - ra.metrics[k]
                        for k in METRIC_KEYS}))
    models = {
        label: {k: mean_std([by[(s, label)].metrics[k] for s in seeds])
                for k in METRIC_KEYS}
        for label in labels
    }
    intervals = {
        k: t_interval([row['difference'][k] for row in rows], confidence)
        for k in METRIC_KEYS
    }
    return dict(seeds=seeds, per_seed=rows, models=models,
                difference={k: iv.to_dict() for k, iv in intervals.items()},
                intervals=intervals)


def run_demo(opts: DemoOptions) -> dict:
    """Run everything; returns the report's content (``report.json``)."""
    opts.check()
    import torch

    from mmfapn.engine import load_config
    from mmfapn.utils.env import load_average, machine_info

    from .pairing import write_backbone_init
    from .plot import biou_plot
    from .report import write_report
    from .splits import write_demo_splits
    from .statistics import verdict
    if opts.threads is not None:
        torch.set_num_threads(opts.threads)
    t_start = time.perf_counter()
    info = machine_info()
    a_label, b_label = opts.labels
    configs = (opts.fpn_config, opts.fapn_config)
    seeds = opts.seed_list
    print(f'mmfapn demo: {a_label} vs {b_label}, {len(seeds)} paired '
          f'seed(s) {seeds}, evaluated on the {opts.split} split; '
          f'{info["cpu"]} ({info["cores"]} cores, torch threads '
          f'{info["torch_threads"]}, load average {info["load_average"]})',
          flush=True)
    os.makedirs(opts.work_dir, exist_ok=True)
    fpn_cfg = load_config(opts.fpn_config)
    size = fpn_cfg.get('image_size', fpn_cfg.get('crop_size'))
    if size is None or len(size) != 2:
        raise ValueError(f'{opts.fpn_config}: the demo needs image_size = '
                         '(h, w) (or crop_size) in the config: the '
                         'generated image size')
    height, width = int(size[0]), int(size[1])
    timings: Dict[str, float] = {}
    steps = len(seeds) + 2

    print(f'[1/{steps}] writing {opts.num_train} train + {opts.num_val} '
          f'val + {opts.test_size} test synthetic Cityscapes-format images '
          f'of {height}x{width} (data seed {opts.data_seed}) ...',
          flush=True)
    t = time.perf_counter()
    data_root = osp.join(opts.work_dir, 'data', 'toycity')
    write_demo_splits(data_root, opts.num_train, opts.num_val,
                      opts.test_size, height, width, opts.data_seed,
                      opts.num_classes)
    timings['data'] = time.perf_counter() - t
    data = dict(root=data_root, num_train=opts.num_train,
                num_val=opts.num_val, num_test=opts.test_size,
                height=height, width=width, num_classes=opts.num_classes,
                data_seed=opts.data_seed, eval_split=opts.split)

    progress = DemoProgress([(label, opts.iters) for _ in seeds
                             for label in opts.labels])
    runs: List[RunResult] = []
    for step, seed in enumerate(seeds, 2):
        print(f'[{step}/{steps}] seed {seed}: {a_label} and {b_label} from '
              f'one backbone initialisation (elapsed '
              f'{format_seconds(time.perf_counter() - t_start)})',
              flush=True)
        t = time.perf_counter()
        init = osp.join(opts.work_dir, 'runs', f'seed{seed}',
                        'backbone_init.pth')
        write_backbone_init(fpn_cfg, seed, init)
        for label, config in zip(opts.labels, configs):
            t_run = time.perf_counter()
            runs.append(train_one(opts, label, config, data_root, seed, init,
                                  progress))
            timings[f'seed{seed}_{label}'] = time.perf_counter() - t_run
        timings[f'seed{seed}'] = time.perf_counter() - t
    check_pairing(runs)

    print(f'[{steps}/{steps}] statistics, figures and report (elapsed '
          f'{format_seconds(time.perf_counter() - t_start)})', flush=True)
    t = time.perf_counter()
    summary = summarize(runs, opts.labels)
    sentence = verdict({k: summary['intervals'][k] for k in VERDICT_KEYS},
                       opts.labels, opts.split)
    last = [r for r in runs if r.seed == seeds[-1]]
    figures = make_figures(opts, last, configs)
    figures['biou_plot'] = biou_plot(
        osp.join(opts.work_dir, 'figures', 'biou_vs_n.png'), WIDTHS,
        summary['models'], opts.labels,
        title=f'{opts.split} split, mean ± std over {len(seeds)} seed(s)')
    offsets = [
        dict(seed=r.seed, fams=offset_statistics(r, opts.fapn_config))
        for r in runs if r.label == b_label
    ]
    timings['figures'] = time.perf_counter() - t
    timings['total'] = time.perf_counter() - t_start
    timings['load_average_end'] = load_average()
    paths = write_report(opts, runs, summary, sentence, figures, offsets,
                         info, timings, data)
    print(f'\n{sentence}\nreport: {paths["markdown"]}\ntotal time: '
          f'{format_seconds(timings["total"])}', flush=True)
    with open(paths['json']) as f:
        return json.load(f)


def main_options(argv: Optional[Sequence[str]] = None) -> DemoOptions:
    """Parse ``tools/demo.py``'s command line."""
    import argparse
    p = argparse.ArgumentParser(
        description='Does FaPN help?  Train FPN and FaPN with the same '
        'recipe over K paired seeds on a synthetic boundary-heavy dataset '
        '(CPU), evaluate mIoU and boundary mIoU on a held-out test split, '
        'and write a report with a t-interval, a verdict and figures.')
    d = DemoOptions()
    p.add_argument('--seeds', type=int, default=d.seeds,
                   help='K paired seeds (default %(default)s; 1: quick '
                   'mode without an interval)')
    p.add_argument('--seed', type=int, default=d.seed,
                   help='first training seed (default %(default)s)')
    p.add_argument('--iters', type=int, default=d.iters,
                   help='training iterations per run (default %(default)s)')
    p.add_argument('--batch-size', type=int, default=None,
                   help='training batch size (default: the config\'s, 4)')
    p.add_argument('--num-train', type=int, default=d.num_train)
    p.add_argument('--num-val', type=int, default=d.num_val)
    p.add_argument('--num-test', type=int, default=None,
                   help='test images (default: --num-val)')
    p.add_argument('--num-classes', type=int, default=d.num_classes,
                   help='road + object classes, 2..19')
    p.add_argument('--data-seed', type=int, default=d.data_seed)
    p.add_argument('--split', default=d.split, choices=EVAL_SPLITS,
                   help='evaluation split: test (the result) or val (for '
                   'choosing a recipe)')
    p.add_argument('--offset-lr-mult', type=float, default=None,
                   help='override the offset/mask conv lr multiplier '
                   '(default: the config\'s, from '
                   'configs/_base_/fapn_offset_lr.py)')
    p.add_argument('--fpn-config', default=d.fpn_config,
                   help='baseline config (mmseg, iteration-based)')
    p.add_argument('--fapn-config', default=d.fapn_config,
                   help='FaPN config with the same recipe')
    p.add_argument('--num-figures', type=int, default=d.num_figures)
    p.add_argument('--threads', type=int, default=None,
                   help='torch CPU threads (default: torch\'s choice)')
    p.add_argument('--log-interval', type=int, default=None)
    p.add_argument('--work-dir', default=d.work_dir)
    p.add_argument('--verbose', action='store_true',
                   help='print mmengine\'s log too')
    a = p.parse_args(argv)
    return DemoOptions(
        work_dir=a.work_dir, iters=a.iters, batch_size=a.batch_size,
        num_train=a.num_train, num_val=a.num_val, num_test=a.num_test,
        num_classes=a.num_classes, seeds=a.seeds, seed=a.seed,
        data_seed=a.data_seed, split=a.split,
        offset_lr_mult=a.offset_lr_mult, fpn_config=a.fpn_config,
        fapn_config=a.fapn_config, num_figures=a.num_figures,
        threads=a.threads, log_interval=a.log_interval, verbose=a.verbose)


def argv_of(opts: DemoOptions) -> List[str]:
    """Command-line flags that reproduce ``opts`` (non-default only)."""
    default = DemoOptions()
    argv = []
    for name, flag in (('seeds', '--seeds'), ('seed', '--seed'),
                       ('iters', '--iters'), ('batch_size', '--batch-size'),
                       ('num_train', '--num-train'),
                       ('num_val', '--num-val'), ('num_test', '--num-test'),
                       ('num_classes', '--num-classes'),
                       ('data_seed', '--data-seed'), ('split', '--split'),
                       ('offset_lr_mult', '--offset-lr-mult'),
                       ('fpn_config', '--fpn-config'),
                       ('fapn_config', '--fapn-config'),
                       ('threads', '--threads'),
                       ('num_figures', '--num-figures'),
                       ('work_dir', '--work-dir')):
        value, base = getattr(opts, name), getattr(default, name)
        if name.endswith('config'):  # the same file, however written
            value, base = osp.abspath(value), osp.abspath(base)
        if value != base:
            argv += [flag, str(value)]
    return argv


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        opts = main_options(argv)
        opts.check()
    except (ValueError, FileNotFoundError) as e:
        print(f'demo: error: {e}', file=sys.stderr)
        return 2
    run_demo(opts)
    return 0

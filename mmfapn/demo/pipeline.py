"""``make demo``: FPN vs FaPN with the same recipe, on CPU, in minutes.

Steps (each prints a header; training prints a progress bar with ETA):

1. write a boundary-heavy synthetic dataset in the Cityscapes on-disk
   format (:func:`mmfapn.datasets.write_toy_cityscapes`: discs, polygons,
   1-4 px bars and small dots; images of the config's ``crop_size``);
2. train the FPN config, then the FaPN config, through mmengine's Runner
   (the code path of ``mim train`` / ``tools/train.py``), same seed, same
   data order, same schedule; each is evaluated at the end by its config's
   ``val_evaluator`` (mmseg's ``IoUMetric`` and mmfapn's
   ``BoundaryIoUMetric``: bIoU@3/5/8/12);
3. reload both from their checkpoints and draw the figures: image | ground
   truth | FPN | FaPN with boundary errors (:mod:`mmfapn.demo.compare`),
   and FaPN's alignment, before/after each FAM with its offsets
   (:mod:`mmfapn.demo.alignment_figure`), on the first validation images
   (not selected for the result);
4. write ``report.md`` and ``report.json`` in the work directory: the
   table, the machine, the timings and the figures.  Every number comes
   from this run.

The two configs differ only in the neck; everything else (backbone, head,
data, schedule, seed) is inherited from one base, and the demo applies the
same overrides to both.  The backbone is built first, so both models start
from the same backbone weights.
"""
import copy
import gc
import json
import os
import os.path as osp
import platform
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence

from .progress import DemoProgressHook, format_seconds

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_CONFIGS = osp.join(REPO, 'configs', 'seg', 'demo')
FPN_CONFIG = osp.join(DEMO_CONFIGS, 'sem-fpn_r18_fpn_toycity-demo.py')
FAPN_CONFIG = osp.join(DEMO_CONFIGS, 'sem-fpn_r18_fapn_toycity-demo.py')
METRIC_KEYS = ('mIoU', 'bIoU@3', 'bIoU@5', 'bIoU@8', 'bIoU@12', 'bIoU')


@dataclass
class DemoOptions:
    """What to run.

    Attributes:
        work_dir: everything goes here (data, runs, figures, report).
        iters: training iterations per model (the configs' schedules,
            warm-up included, are rescaled to it).
        batch_size: training batch size (None: the config's).
        num_train, num_val: generated images per split.
        num_classes: Cityscapes train ids used (road + objects), 2..19.
        seed: data and training seed (the same for both models).
        fpn_config, fapn_config: the two configs (mmseg, same recipe).
        labels: names of the two models in the report.
        num_figures: validation images in the comparison figure.
        threads: torch CPU threads (None: torch's default).
        log_interval: iterations between progress lines (None: about 20
            lines per run).
        verbose: also print mmengine's own log on the console (it always
            goes to each run's log file).
    """
    work_dir: str = 'work_dirs/demo'
    iters: int = 400
    batch_size: Optional[int] = None
    num_train: int = 300
    num_val: int = 100
    num_classes: int = 8
    seed: int = 0
    fpn_config: str = FPN_CONFIG
    fapn_config: str = FAPN_CONFIG
    labels: Sequence[str] = ('FPN', 'FaPN')
    num_figures: int = 4
    threads: Optional[int] = None
    log_interval: Optional[int] = None
    verbose: bool = False

    def check(self) -> None:
        for name in ('iters', 'num_train', 'num_val', 'num_figures'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) \
                    or value < 1:
                raise ValueError(f'{name} must be a positive int, got '
                                 f'{value!r}')
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got '
                             f'{self.batch_size}')
        if self.threads is not None and self.threads < 1:
            raise ValueError(f'threads must be >= 1, got {self.threads}')
        if not 2 <= self.num_classes <= 19:
            raise ValueError('num_classes must be in [2, 19] (Cityscapes '
                             f'train ids), got {self.num_classes}')
        for path in (self.fpn_config, self.fapn_config):
            if not osp.isfile(path):
                raise FileNotFoundError(f'config file not found: {path!r}')
        if len(self.labels) != 2 or len(set(self.labels)) != 2:
            raise ValueError(f'labels must be two distinct names, got '
                             f'{self.labels!r}')


@dataclass
class RunResult:
    """One trained model."""
    label: str
    config: str
    work_dir: str
    checkpoint: str
    params: int
    iters: int
    batch_size: int
    train_seconds: float
    val_seconds: float
    metrics: Dict[str, float] = field(default_factory=dict)


def machine_info() -> dict:
    """CPU model, cores usable by this process, OS, Python, torch and its
    thread count, and the 1-minute load average."""
    import torch
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count()
    return dict(
        cpu=cpu,
        cores=cores,
        system=f'{platform.system()} {platform.release()}',
        python=platform.python_version(),
        torch=torch.__version__,
        torch_threads=torch.get_num_threads(),
        load_average=round(os.getloadavg()[0], 2)
        if hasattr(os, 'getloadavg') else None)


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


def configure_run(cfg, opts: DemoOptions, label: str, data_root: str,
                  work_dir: str) -> DemoProgressHook:
    """Apply the demo's overrides (the same for both models) to ``cfg``
    in place; returns the progress hook to add."""
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(key) is not None:
            cfg[key].dataset.data_root = data_root
    if opts.batch_size is not None:
        cfg.train_dataloader.batch_size = opts.batch_size
    _rescale_schedule(cfg, opts.iters)
    cfg.work_dir = work_dir
    cfg.randomness = dict(seed=opts.seed)
    stamp = time.strftime('%Y%m%d_%H%M%S')
    # unique names: mmengine keeps loggers/visualizers per name
    cfg.experiment_name = f'{label}_{stamp}_{time.time_ns() % 10**9}'
    if cfg.get('visualizer') is not None:
        cfg.visualizer.name = f'demo_{cfg.experiment_name}'
    if not opts.verbose:
        cfg.log_level = 'WARNING'
    interval = opts.log_interval or max(1, opts.iters // 20)
    # registered on the Runner object, not in the config: the config the
    # Runner dumps stays usable by `mim train`/`tools/train.py` as is
    return DemoProgressHook(label, interval=interval)


def train_one(opts: DemoOptions, label: str, config: str,
              data_root: str) -> RunResult:
    """Train and evaluate one config through mmengine's Runner."""
    from mmfapn.engine import build_runner, load_config
    work_dir = osp.join(opts.work_dir, label.lower())
    if osp.isdir(work_dir):  # a stale checkpoint must not be reported
        shutil.rmtree(work_dir)
    cfg = load_config(config, work_dir=work_dir)
    hook = configure_run(cfg, opts, label, data_root, work_dir)
    runner = build_runner(cfg)
    runner.register_hook(hook)
    if not opts.verbose:  # keep mmengine's INFO log in the file only
        for h in runner.logger.handlers:
            if hasattr(h, 'baseFilename'):
                h.setLevel('INFO')
    params = sum(p.numel() for p in runner.model.parameters())
    print(f'  {label}: {config} ({params:,} parameters), '
          f'{opts.iters} iterations of batch '
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
    checkpoint = osp.join(work_dir, f'iter_{opts.iters}.pth')
    if not osp.isfile(checkpoint):
        raise RuntimeError(f'{label}: expected checkpoint {checkpoint}')
    result = RunResult(
        label=label,
        config=osp.relpath(config, REPO) if config.startswith(REPO)
        else config,
        work_dir=work_dir,
        checkpoint=checkpoint,
        params=params,
        iters=opts.iters,
        batch_size=cfg.train_dataloader.batch_size,
        train_seconds=hook.train_seconds,
        val_seconds=hook.val_seconds,
        metrics=metrics)
    del runner
    gc.collect()
    return result


def _dumped_config(run: RunResult, config: str) -> str:
    """The config the Runner dumped into the run's work directory (with the
    demo's overrides), for reloading the checkpoint as a user would."""
    path = osp.join(run.work_dir, osp.basename(config))
    return path if osp.isfile(path) else config


def make_figures(opts: DemoOptions, runs: List[RunResult],
                 configs: Sequence[str]) -> dict:
    """Reload both checkpoints and draw the comparison, alignment and
    overview figures into ``<work_dir>/figures``; returns their paths and
    the alignment statistics."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS

    from .alignment_figure import save_alignment, visualize_alignment
    from .compare import compare_figure, load_ground_truth, pick_indices
    from .drawing import grid, make_palette, read_rgb, titled, write_png
    from .inference import load_model, predict
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
                            name=f'val {i}'))
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


def verdict(runs: List[RunResult]) -> str:
    """One honest sentence: did the second model beat the first, on which
    metric, by how much."""
    a, b = runs
    d_m = b.metrics['mIoU'] - a.metrics['mIoU']
    d_b = b.metrics['bIoU'] - a.metrics['bIoU']
    better = [k for k in METRIC_KEYS if b.metrics[k] > a.metrics[k]]

    def signed(x):
        return f'{x:+.2f}'

    if len(better) == len(METRIC_KEYS):
        head = f'{b.label} beat {a.label} on every metric'
    elif not better:
        head = f'{b.label} did not beat {a.label} on any metric'
    else:
        head = (f'{b.label} beat {a.label} on {", ".join(better)} only')
    return (f'{head} in this run: mIoU {signed(d_m)} points, mean boundary '
            f'mIoU (bIoU) {signed(d_b)} points, bIoU@3 '
            f'{signed(b.metrics["bIoU@3"] - a.metrics["bIoU@3"])} points '
            f'({b.label} minus {a.label}; one seed, short schedule).')


def write_report(opts: DemoOptions, runs: List[RunResult], figures: dict,
                 info: dict, timings: dict, data: dict) -> Dict[str, str]:
    """``report.md`` and ``report.json`` in the work directory."""
    rel = lambda p: osp.relpath(p, opts.work_dir)  # noqa: E731
    a, b = runs
    lines = [
        '# mmfapn demo: FPN vs FaPN, same recipe', '',
        f'Generated by `tools/demo.py` on {time.strftime("%Y-%m-%d %H:%M")}'
        ' — every number below was measured in this run.', '',
        '## Result', '',
        '| model | params | train time | s/iter | mIoU | bIoU@3 | bIoU@5 '
        '| bIoU@8 | bIoU@12 | bIoU (mean) |',
        '|---|---|---|---|---|---|---|---|---|---|'
    ]
    for r in runs:
        m = r.metrics
        lines.append(
            f'| {r.label} | {r.params:,} | {format_seconds(r.train_seconds)}'
            f' | {r.train_seconds / r.iters:.2f} | {m["mIoU"]:.2f} | '
            f'{m["bIoU@3"]:.2f} | {m["bIoU@5"]:.2f} | {m["bIoU@8"]:.2f} | '
            f'{m["bIoU@12"]:.2f} | {m["bIoU"]:.2f} |')
    d = {k: b.metrics[k] - a.metrics[k] for k in METRIC_KEYS}
    lines.append(
        f'| {b.label} − {a.label} | {b.params - a.params:+,} | | | '
        + ' | '.join(f'{d[k]:+.2f}' for k in METRIC_KEYS) + ' |')
    lines += [
        '', verdict(runs), '',
        'mIoU: mmseg `IoUMetric` over the classes present; bIoU@n: mIoU '
        'over the pixels within n px of a ground-truth outline '
        '(`BoundaryIoUMetric`, the paper\'s Table 2 metric as defined in '
        '`mmfapn/evaluation/boundary_iou.py`); bIoU: mean over n = 3, 5, '
        '8, 12.  Validation set: the '
        f'{data["num_val"]} generated validation images.', '',
        '## Setting', '',
        f'- data: synthetic scenes (`mmfapn.datasets.write_toy_cityscapes`'
        f'), {data["num_train"]} train / {data["num_val"]} val images of '
        f'{data["height"]}x{data["width"]} px in the Cityscapes on-disk '
        f'format (road + {data["num_classes"] - 1} object classes: discs, '
        'polygons, 1-4 px bars, small dots), read by mmseg\'s '
        '`CityscapesDataset`;',
        f'- configs: `{a.config}` and `{b.config}` (only the neck '
        'differs), trained from scratch (nothing downloaded) through '
        'mmengine\'s Runner;',
        f'- {opts.iters} iterations of batch {a.batch_size} each, seed '
        f'{opts.seed} for both (same data order, same backbone '
        'initialisation);',
        f'- machine: {info["cpu"]}, {info["cores"]} cores, '
        f'{info["system"]}, Python {info["python"]}, torch {info["torch"]} '
        f'({info["torch_threads"]} threads); load average '
        f'{info["load_average"]} at the start, '
        f'{timings.get("load_average_end")} at the end (other processes '
        'share the CPU when it exceeds the core count);',
        f'- wall time: {format_seconds(timings["total"])} in all (data '
        f'{format_seconds(timings["data"])}, {a.label} '
        f'{format_seconds(timings[a.label])}, {b.label} '
        f'{format_seconds(timings[b.label])} including evaluation, '
        f'figures {format_seconds(timings["figures"])}).', '',
        'One run, one seed, a few hundred iterations from scratch on toy '
        'data: a difference of a point or two may be noise (run it again '
        'with `--seed` to see), and it says little about the paper\'s '
        'setting (ImageNet backbone, Cityscapes, 65k iterations).', '',
        '## Figures', '',
        f'![comparison]({rel(figures["compare"])})', '',
        f'`{rel(figures["compare"])}`: the first {opts.num_figures} '
        'validation images (not selected): image | ground truth (outlines '
        f'white) | {a.label} | {b.label}; red: wrong within 3 px of a true '
        'outline, cyan: wrong elsewhere.', '',
        f'![alignment]({rel(figures["alignment"])})', '',
        f'`{rel(figures["alignment"])}` (`tools/analysis/vis_alignment.py` '
        f'on the {b.label} checkpoint): for each FAM, finest first, the '
        'upsampled feature before the FAM and the aligned feature after it '
        '(first three principal components of the channels as RGB, as the '
        'paper\'s Fig. 6 shows the input and output of the last FAM), the '
        'mask-weighted mean sampling offset as a colour wheel and as '
        'arrows, and the prediction.', ''
    ]
    lines += ['| FAM | stride | map | mean offset (px) | max offset (px) |'
              ' mean mask |', '|---|---|---|---|---|---|']
    for s in figures['alignment_stats']:
        lines.append(
            f'| `{s["name"]}` | {s["stride"]} | {s["size"][0]}x'
            f'{s["size"][1]} | {s["mean_displacement_px"]:.3f} | '
            f'{s["max_displacement_px"]:.3f} | {s["mean_mask"]:.3f} |')
    lines += [
        '', '## Reproduce', '', '```bash',
        'make demo' if not _custom(opts) else
        'python tools/demo.py ' + ' '.join(_argv_of(opts)), '```', ''
    ]
    md = osp.join(opts.work_dir, 'report.md')
    with open(md, 'w') as f:
        f.write('\n'.join(lines))
    js = osp.join(opts.work_dir, 'report.json')
    with open(js, 'w') as f:
        json.dump(
            dict(
                options={k: v for k, v in asdict(opts).items()},
                machine=info,
                data=data,
                timings=timings,
                runs=[asdict(r) for r in runs],
                delta=d,
                verdict=verdict(runs),
                figures={k: v for k, v in figures.items()}),
            f,
            indent=2,
            default=list)
    return dict(markdown=md, json=js)


def _custom(opts: DemoOptions) -> bool:
    return bool(_argv_of(opts))


def _argv_of(opts: DemoOptions) -> List[str]:
    """Command-line flags that reproduce ``opts`` (non-default only)."""
    default = DemoOptions()
    argv = []
    for name, flag in (('iters', '--iters'), ('batch_size', '--batch-size'),
                       ('num_train', '--num-train'), ('num_val',
                                                      '--num-val'),
                       ('num_classes', '--num-classes'), ('seed', '--seed'),
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


def run_demo(opts: DemoOptions) -> dict:
    """Run everything; returns the report's content (``report.json``)."""
    opts.check()
    import torch

    from mmfapn.datasets import write_toy_cityscapes
    from mmfapn.engine import load_config
    if opts.threads is not None:
        torch.set_num_threads(opts.threads)
    t_start = time.perf_counter()
    info = machine_info()
    print(f'mmfapn demo: {opts.labels[0]} vs {opts.labels[1]} on '
          f'{info["cpu"]} ({info["cores"]} cores, torch threads '
          f'{info["torch_threads"]}, load average {info["load_average"]})',
          flush=True)
    os.makedirs(opts.work_dir, exist_ok=True)
    # the data follows the config's crop size
    crop = load_config(opts.fpn_config).get('crop_size')
    if crop is None or len(crop) != 2:
        raise ValueError(f'{opts.fpn_config}: the demo needs a crop_size = '
                         '(h, w) in the config (the generated image size)')
    height, width = int(crop[0]), int(crop[1])
    timings = {}

    print(f'[1/4] writing {opts.num_train} + {opts.num_val} synthetic '
          f'Cityscapes-format images of {height}x{width} ...', flush=True)
    t = time.perf_counter()
    data_root = osp.join(opts.work_dir, 'data', 'toycity')
    if osp.isdir(data_root):
        shutil.rmtree(data_root)
    write_toy_cityscapes(data_root, num_train=opts.num_train,
                         num_val=opts.num_val, height=height, width=width,
                         seed=opts.seed, num_classes=opts.num_classes)
    timings['data'] = time.perf_counter() - t
    data = dict(root=data_root, num_train=opts.num_train,
                num_val=opts.num_val, height=height, width=width,
                num_classes=opts.num_classes)

    runs = []
    configs = (opts.fpn_config, opts.fapn_config)
    for step, (label, config) in enumerate(zip(opts.labels, configs), 2):
        print(f'[{step}/4] training {label} (elapsed '
              f'{format_seconds(time.perf_counter() - t_start)})',
              flush=True)
        t = time.perf_counter()
        runs.append(train_one(opts, label, config, data_root))
        timings[label] = time.perf_counter() - t
        if step == 2:
            print(f'  {label} took {format_seconds(timings[label])}; the '
                  f'{opts.labels[1]} run follows (its deformable convs make '
                  'each iteration slower)', flush=True)

    print(f'[4/4] figures and report (elapsed '
          f'{format_seconds(time.perf_counter() - t_start)})', flush=True)
    t = time.perf_counter()
    figures = make_figures(opts, runs, configs)
    timings['figures'] = time.perf_counter() - t
    timings['total'] = time.perf_counter() - t_start
    timings['load_average_end'] = round(os.getloadavg()[0], 2) \
        if hasattr(os, 'getloadavg') else None
    paths = write_report(opts, runs, figures, info, timings, data)
    print(f'\n{verdict(runs)}\nreport: {paths["markdown"]}\ntotal time: '
          f'{format_seconds(timings["total"])}', flush=True)
    with open(paths['json']) as f:
        return json.load(f)


def main_options(argv: Optional[Sequence[str]] = None) -> DemoOptions:
    """Parse ``tools/demo.py``'s command line."""
    import argparse
    p = argparse.ArgumentParser(
        description='Train FPN and FaPN with the same recipe on a '
        'synthetic boundary-heavy dataset (CPU), evaluate mIoU and boundary '
        'mIoU, and write a report with figures.')
    d = DemoOptions()
    p.add_argument('--iters', type=int, default=d.iters,
                   help='training iterations per model (default %(default)s)')
    p.add_argument('--batch-size', type=int, default=None,
                   help='training batch size (default: the config\'s, 4)')
    p.add_argument('--num-train', type=int, default=d.num_train)
    p.add_argument('--num-val', type=int, default=d.num_val)
    p.add_argument('--num-classes', type=int, default=d.num_classes,
                   help='road + object classes, 2..19')
    p.add_argument('--seed', type=int, default=d.seed)
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
        num_train=a.num_train, num_val=a.num_val,
        num_classes=a.num_classes, seed=a.seed, fpn_config=a.fpn_config,
        fapn_config=a.fapn_config, num_figures=a.num_figures,
        threads=a.threads, log_interval=a.log_interval, verbose=a.verbose)


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        opts = main_options(argv)
        opts.check()
    except (ValueError, FileNotFoundError) as e:
        print(f'demo: error: {e}', file=sys.stderr)
        return 2
    run_demo(opts)
    return 0

"""Speed and complexity of a model built from a config (mmdet or mmseg).

    python tools/analysis/benchmark.py CONFIG [--compare OTHER_CONFIG]
        [--mode inference|train] [--shape H W] [--batch N] [--iters N]
        [--warmup N] [--device cpu|cuda] [--checkpoint PATH] [--json PATH]
        [--amp float16|bfloat16] [--channels-last] [--cudnn-benchmark]
        [--interleave] [--cpu-malloc default|reuse]

CONFIG / OTHER_CONFIG: a config file of this repository (any of
``configs/``) or a stock one written ``mmdet::path`` / ``mmseg::path``
(loaded through a temporary child config, since ``Config.fromfile`` does
not resolve those prefixes).

What is measured, per model:

* latency: median (also mean/min/max) wall time of one step over ``--iters``
  steps after ``--warmup`` untimed ones; on CUDA the device is synchronised
  before and after each step.  ``inference``: ``model.test_step`` under
  ``torch.no_grad()`` (data preprocessor, forward, post-processing: what the
  test loop runs).  ``train``: ``model.train_step`` with the config's
  optimizer wrapper (data preprocessor, forward, loss, backward, optimizer
  step).  FPS = batch / median latency.
* peak memory: on CUDA ``torch.cuda.max_memory_allocated`` over the timed
  steps; on CPU the process's peak resident set size (Linux ``VmHWM``, reset
  before the timed steps where ``/proc/self/clear_refs`` allows it), which
  includes the Python process and the libraries, not only tensors.
* parameters, and FLOPs of one inference forward (the ``predict`` path; the
  ``tensor`` path if that cannot be traced) counted by mmengine's
  ``FlopAnalyzer`` (fvcore's convention: one multiply-add = one FLOP, i.e.
  the figures are MACs).  mmengine has no handle for deformable
  convolutions: here a (modulated) deformable conv counts as the dense conv
  of the same shape plus the sampling, 4 multiply-adds per bilinearly
  sampled value and 1 for the modulation mask, i.e.
  ``N*H_out*W_out*C_out*(C_in/groups)*kh*kw + 5*N*C_in*kh*kw*H_out*W_out``
  (4 instead of 5 without a mask).  The convs that predict offsets and masks
  are ordinary convs and are counted as such.  mmfapn's deformable convs are
  traced as one op whatever implementation (``dcn_impl``) runs them, so the
  count does not depend on it.

Inputs are synthetic scenes from :func:`mmfapn.datasets.render_scene` of
exactly ``--shape`` (no resizing; an mmseg training crop size in the config
is replaced by ``--shape``), with ground truth for training (semantic map;
boxes, labels, masks from the instances for mmdet).  Weights are random
unless ``--checkpoint`` is given (nothing is downloaded: pretrained
initialisations are switched off), SyncBN is reverted to BN as mmengine's
Runner does without distribution.

GPU options: ``--amp DTYPE`` runs each step under ``torch.autocast`` with
that dtype (``train``: mmengine's ``AmpOptimWrapper`` with that dtype and a
dynamic loss scale instead of the config's ``OptimWrapper``);
``--channels-last`` converts the model's parameters to
``torch.channels_last`` (the convolutions then run, and hand on, NHWC
tensors; the data preprocessor's output stays NCHW and is converted by the
first conv); ``--cudnn-benchmark`` sets ``torch.backends.cudnn.benchmark``
(cuDNN picks the fastest algorithm per shape during the warm-up steps, as
mmengine's ``env_cfg.cudnn_benchmark``).  All three are recorded in the
JSON.

With ``--compare``, the second model is measured the same way and the
ratios CONFIG / OTHER_CONFIG are printed (latency, FPS, parameters, MACs,
peak memory).  ``--interleave`` builds both models first and times them
in rounds, one step of each per round, so that the machine's drift over
a run (on a shared host, up to tens of percent over minutes) reaches both
alike; it also prints the median of the per-round latency ratios, and the
peak memory is then the process's, for both models together.  ``--json``
writes all the figures, the machine and the load average.  A progress
line goes to stderr while it runs.

``--cpu-malloc reuse`` (CPU) sets glibc's malloc as mmfapn's runner does
for CPU runs (:func:`mmfapn.utils.malloc.keep_freed_memory`: freed memory
kept for reuse) before anything is built; the default, ``default``, leaves
glibc's settings alone, as the toolboxes' inferencers and the stock
runner do.  The JSON's ``machine.allocator`` records which malloc served
the run and whether freed memory was kept.
"""
import argparse
import contextlib
import copy
import json
import os
import os.path as osp
import statistics
import sys
import time
from contextlib import contextmanager
from typing import (Any, Callable, Dict, Iterator, List, Optional, Sequence,
                    Tuple)

import numpy as np
import torch
from torch import Tensor, nn

from mmfapn.apis.inference import config_scope, read_config
from mmfapn.utils.env import machine_info, peak_rss_mib, reset_peak_rss
from mmfapn.utils.malloc import allocator, keep_freed_memory

DCN_COUNTING = (
    'deformable conv = dense conv of the same shape (N*Ho*Wo*Cout*Cin/g*kh*kw '
    'MACs) + sampling (4 MACs per bilinearly sampled value, +1 for the '
    'modulation mask: 5*N*Cin*kh*kw*Ho*Wo for DCNv2); offset/mask convs '
    'counted as ordinary convs; MACs reported as FLOPs (mmengine/fvcore '
    'convention)')


# --------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------
def build_model(cfg, scope: str, shape: Tuple[int, int],
                checkpoint: Optional[str], device: str) -> nn.Module:
    """The config's model as :func:`mmfapn.apis.build_model` builds it
    (random weights unless ``checkpoint``, nothing downloaded, SyncBN
    reverted), an mmseg data preprocessor's crop size replaced by
    ``shape`` so that training runs exactly at ``shape``."""
    from mmfapn.apis import build_model as build_inference_model
    cfg = copy.deepcopy(cfg)
    pre = cfg.model.get('data_preprocessor') or {}
    if scope == 'mmseg' and pre.get('size') is not None:
        pre['size'] = tuple(shape)  # train exactly at --shape, no crop pad
    return build_inference_model(cfg, checkpoint, device)


def _find_attr(model: nn.Module, name: str) -> List[int]:
    return [
        getattr(m, name) for m in model.modules()
        if isinstance(getattr(m, name, None), int)
    ]


# --------------------------------------------------------------------------
# synthetic data in the form the toolboxes' loaders give it
# --------------------------------------------------------------------------
def make_batch(model: nn.Module, scope: str, shape: Tuple[int, int],
               batch: int, seed: int = 0) -> Dict[str, list]:
    """Raw uint8 BGR images (as ``LoadImageFromFile``) and data samples with
    ground truth, one synthetic scene per image."""
    from mmengine.structures import PixelData

    from mmfapn.datasets import render_scene
    h, w = shape
    inputs, samples = [], []
    if scope == 'mmseg':
        from mmseg.structures import SegDataSample
        heads = model.decode_head
        head = heads[-1] if isinstance(heads, nn.ModuleList) else heads
        num_classes = head.num_classes
    else:
        from mmfapn.analysis.coverage_batch import scene_det_sample
        things = _find_attr(model, 'num_things_classes')
        num_classes = things[0] if things else max(
            _find_attr(model, 'num_classes') or [1])
        stuff = _find_attr(model, 'num_stuff_classes')
        num_stuff = stuff[0] if stuff else 0
    for i in range(batch):
        scene = render_scene(h, w, num_classes=num_classes, seed=seed + i)
        img = np.ascontiguousarray(scene.image[..., ::-1])  # RGB -> BGR
        inputs.append(torch.from_numpy(img).permute(2, 0, 1).contiguous())
        meta = dict(img_path=f'synthetic_{i}.png', img_id=i,
                    ori_shape=(h, w), img_shape=(h, w), pad_shape=(h, w),
                    scale_factor=(1.0, 1.0), flip=False,
                    flip_direction=None)
        semantic = torch.from_numpy(scene.semantic.astype(np.int64))[None]
        if scope == 'mmseg':
            sample = SegDataSample(metainfo=meta)
            sample.gt_sem_seg = PixelData(data=semantic)
        else:
            sample = scene_det_sample(scene, meta, semantic, num_classes,
                                      num_stuff)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


# --------------------------------------------------------------------------
# FLOPs
# --------------------------------------------------------------------------
class _CountedDeformConv(torch.autograd.Function):
    """mmfapn's deformable conv as one traced op (``prim::PythonOp``) so
    that one handle counts it, whichever implementation computes it."""

    @staticmethod
    def forward(ctx, x, offset, mask, weight, bias, stride, padding, dilation,
                deform_groups, impl):
        from mmfapn.ops import modulated_deform_conv2d
        return modulated_deform_conv2d(
            x, offset, mask, weight, bias, stride, padding, dilation,
            deform_groups, impl=impl)


def _deform_conv_flops(modulated: bool, weight_index: int):
    from mmengine.analysis.jit_handles import get_shape

    def handle(inputs: List[Any], outputs: List[Any]) -> int:
        x = get_shape(inputs[0])
        weight = get_shape(inputs[weight_index])
        out = get_shape(outputs[0])
        n, c_in = x[0], x[1]
        c_out, c_per_group, kh, kw = weight
        positions = n * out[2] * out[3]
        dense = positions * c_out * c_per_group * kh * kw
        sampling = (5 if modulated else 4) * positions * c_in * kh * kw
        return dense + sampling

    return handle


DCN_HANDLES = {
    'prim::PythonOp._CountedDeformConv': _deform_conv_flops(True, 3),
    'prim::PythonOp.ModulatedDeformConv2dFunction': _deform_conv_flops(
        True, 3),
    'prim::PythonOp.DeformConv2dFunction': _deform_conv_flops(False, 2),
}


@contextmanager
def deform_convs_as_single_ops(model: nn.Module) -> Iterator[None]:
    """While active, every ``GuidedModulatedDeformConv2d`` of ``model``
    runs through :class:`_CountedDeformConv` (same result)."""
    from mmfapn.ops import GuidedModulatedDeformConv2d

    def counted_forward(module, x, guide):
        offset, mask = module.offset_and_mask(guide)
        return _CountedDeformConv.apply(x, offset, mask, module.weight,
                                        module.bias, module.stride,
                                        module.padding, module.dilation,
                                        module.deform_groups,
                                        module.dcn_impl)

    patched = []
    for m in model.modules():
        if isinstance(m, GuidedModulatedDeformConv2d):
            m.forward = counted_forward.__get__(m)
            patched.append(m)
    try:
        yield
    finally:
        for m in patched:
            del m.forward


def _tensors(obj, top: bool = True) -> Iterator[Tensor]:
    """The tensors of a model output; of a data sample only its
    predictions (the ground truth it carries is no output)."""
    from mmengine.structures import BaseDataElement
    if isinstance(obj, Tensor):
        yield obj
    elif isinstance(obj, BaseDataElement):
        for k, v in obj.items():
            if not top or k.startswith('pred') or k == 'seg_logits':
                yield from _tensors(v, top=False)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _tensors(v)
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _tensors(v)


class _Traced(nn.Module):
    """``model`` in ``mode`` as a module of one tensor input (for tracing)."""

    def __init__(self, model: nn.Module, data_samples, mode: str,
                 float_only: bool) -> None:
        super().__init__()
        self.model = model
        self.data_samples = data_samples
        self.mode = mode
        self.float_only = float_only

    def forward(self, inputs: Tensor):
        out = self.model(inputs, self.data_samples, mode=self.mode)
        tensors = tuple(
            t for t in _tensors(out)
            if t.is_floating_point() or not self.float_only)
        if not tensors:
            raise RuntimeError(f'no tensor output in {self.mode} mode')
        return tensors


def count_flops(model: nn.Module, data: Dict[str, Any]) -> Dict[str, Any]:
    """MACs of one inference forward on the preprocessed ``data``."""
    import warnings

    from mmengine.analysis import FlopAnalyzer
    model.eval()
    errors = {}
    with torch.no_grad(), deform_convs_as_single_ops(model), \
            warnings.catch_warnings():
        warnings.simplefilter('ignore')
        # the tracer rejects outputs that do not depend on the input (e.g.
        # integer labels of some heads): retry with float outputs only,
        # then the raw 'tensor' mode
        for mode, float_only in (('predict', False), ('predict', True),
                                 ('tensor', False)):
            samples = copy.deepcopy(data['data_samples'])
            analyzer = FlopAnalyzer(
                _Traced(model, samples, mode, float_only),
                (data['inputs'], ))
            analyzer.set_op_handle(**DCN_HANDLES)
            analyzer.unsupported_ops_warnings(False)
            analyzer.uncalled_modules_warnings(False)
            try:
                total = analyzer.total()
            except Exception as e:  # an untraceable path: try the next
                errors[f'{mode}{"/float" if float_only else ""}'] = (
                    f'{type(e).__name__}: {str(e)[:200]}')
                continue
            by_module = analyzer.by_module()
            children = {
                name: by_module.get(f'model.{name}', 0)
                for name, _ in model.named_children()
            }
            return dict(
                flops=int(total),
                flops_path=mode,
                flops_by_module={k: int(v)
                                 for k, v in children.items() if v},
                flops_by_operator={
                    k: int(v)
                    for k, v in analyzer.by_operator().items()
                },
                unsupported_ops=dict(analyzer.unsupported_ops()))
    return dict(flops=None, flops_path=None, flops_errors=errors)


# --------------------------------------------------------------------------
# timing and memory
# --------------------------------------------------------------------------
class Progress:
    """One status line on stderr (rewritten in place on a terminal)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.tty = sys.stderr.isatty()

    def __call__(self, text: str) -> None:
        line = f'[benchmark {self.name}] {text}'
        if self.tty:
            sys.stderr.write('\r' + line.ljust(100)[:160])
        else:
            sys.stderr.write(line + '\n')
        sys.stderr.flush()

    def done(self) -> None:
        if self.tty:
            sys.stderr.write('\n')
            sys.stderr.flush()


def make_step(model: nn.Module, cfg, mode: str, device: str,
              amp: Optional[str] = None) -> Callable[[dict], Any]:
    """One ``train_step`` (with the config's optimizer wrapper) or
    ``test_step`` (under ``no_grad``) of ``model`` on a batch."""

    def autocast():
        if amp is None:
            return contextlib.nullcontext()
        return torch.autocast(torch.device(device).type,
                              dtype=getattr(torch, amp))

    if mode == 'train':
        from mmengine.optim import build_optim_wrapper
        model.train()
        wrapper_cfg = copy.deepcopy(cfg.optim_wrapper)
        if amp is not None:  # as tools/train.py --amp, with this dtype
            if wrapper_cfg.get('type', 'OptimWrapper') not in (
                    'OptimWrapper', 'AmpOptimWrapper'):
                raise ValueError('benchmark: --amp needs optim_wrapper.type='
                                 f"OptimWrapper, got {wrapper_cfg['type']!r}")
            wrapper_cfg['type'] = 'AmpOptimWrapper'
            wrapper_cfg['dtype'] = amp
            wrapper_cfg.setdefault('loss_scale', 'dynamic')
        optim_wrapper = build_optim_wrapper(model, wrapper_cfg)

        def step(batch):  # AmpOptimWrapper applies autocast itself
            return model.train_step(batch, optim_wrapper)
    else:
        model.eval()

        def step(batch):
            with torch.no_grad(), autocast():
                return model.test_step(batch)

    return step


def time_interleaved(cases: Sequence[Tuple[Callable[[dict], Any], dict,
                                           Progress]],
                     mode: str, iters: int, warmup: int,
                     device: str) -> List[Dict[str, Any]]:
    """Time the steps of several models in rounds (model 1, model 2, ...
    per round), so that a drift of the machine's speed reaches all of
    them alike; with one case this is plain repeated timing.  Peak memory
    is the process's over the timed steps: with several cases it is
    shared by all of them and reported once (``peak_memory_mib`` None)."""
    cuda = device.startswith('cuda')

    def sync():
        if cuda:
            torch.cuda.synchronize()

    times: List[List[float]] = [[] for _ in cases]
    rss_reset = False
    for i in range(warmup + iters):
        timed = i >= warmup
        if i == warmup:  # peak memory over the timed steps only
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            else:
                rss_reset = reset_peak_rss()
        for (step, data, progress), ts in zip(cases, times):
            batch = copy.deepcopy(data)  # a step may edit its samples
            sync()
            start = time.perf_counter()
            step(batch)
            sync()
            elapsed = time.perf_counter() - start
            if timed:
                ts.append(elapsed)
                progress(f'{mode} step {len(ts)}/{iters}: {elapsed:.3f} s')
            else:
                progress(f'warm-up {i + 1}/{warmup}: {elapsed:.3f} s')
    for _, _, progress in cases:
        progress.done()
    peak_kind = 'cuda_max_memory_allocated' if cuda else 'process_peak_rss'
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = peak_rss_mib()
        if not rss_reset:
            peak_kind += '_since_process_start'
    results = []
    for (_, data, _), ts in zip(cases, times):
        median = statistics.median(ts)
        result = dict(
            latency_s=dict(
                median=median,
                mean=statistics.fmean(ts),
                min=min(ts),
                max=max(ts),
                all=ts),
            fps=len(data['inputs']) / median,
            peak_memory_mib=peak,
            peak_memory_kind=peak_kind)
        if len(cases) > 1:
            result.update(peak_memory_mib=None,
                          peak_memory_kind=peak_kind + '_of_all_models',
                          process_peak_memory_mib=peak)
        results.append(result)
    return results


# --------------------------------------------------------------------------
# one model, the report
# --------------------------------------------------------------------------
def prepare_model(path: str, args) -> Tuple[Dict[str, Any], nn.Module,
                                            Any, Dict[str, list], Progress]:
    """Build the model of ``path`` and its batch, count its FLOPs; returns
    (result so far, model, config, batch, progress line)."""
    progress = Progress(osp.basename(path))
    progress('loading config')
    cfg = read_config(path)
    scope = config_scope(cfg, path)
    torch.manual_seed(0)
    progress('building model')
    model = build_model(cfg, scope, args.shape, args.checkpoint, args.device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    result: Dict[str, Any] = dict(
        config=path,
        scope=scope,
        model_type=cfg.model.get('type'),
        params=sum(p.numel() for p in model.parameters()))
    data = make_batch(model, scope, args.shape, args.batch)
    if args.flops:
        progress('counting FLOPs (one traced inference forward)')
        pre = model.data_preprocessor(copy.deepcopy(data), False)
        result.update(count_flops(model, pre))
    result.update(amp=args.amp, channels_last=args.channels_last,
                  cudnn_benchmark=args.cudnn_benchmark)
    try:
        from mmfapn.ops.modulated_deform_conv import resolve_impl
        result['dcn_impl_auto'] = resolve_impl('auto', args.device)
    except ImportError:
        result['dcn_impl_auto'] = 'mmcv'
    return result, model, cfg, data, progress


def benchmark_models(paths: Sequence[str], args) -> List[Dict[str, Any]]:
    """Build the models of ``paths``, then time them together in rounds
    (:func:`time_interleaved`; one path: plain repeated timing)."""
    prepared = [prepare_model(p, args) for p in paths]
    cases = [(make_step(model, cfg, args.mode, args.device, args.amp), data,
              progress) for _, model, cfg, data, progress in prepared]
    timings = time_interleaved(cases, args.mode, args.iters, args.warmup,
                               args.device)
    results = []
    for (result, *_), timing in zip(prepared, timings):
        result.update(timing)
        results.append(result)
    return results


def _fmt(v: Optional[float], unit: str = '', scale: float = 1.0,
         digits: int = 3) -> str:
    return 'n/a' if v is None else f'{v / scale:.{digits}f}{unit}'


def report(results: List[Dict[str, Any]], info: Dict[str, Any],
           args) -> Dict[str, Any]:
    where = info.get('gpu') or info['cpu']
    print(f'\nbenchmark: mode={args.mode} shape={args.shape[0]}x'
          f'{args.shape[1]} batch={args.batch} iters={args.iters} '
          f'warmup={args.warmup} device={args.device} ({where}, torch '
          f'{info["torch"]}, {info["torch_threads"]} threads, load '
          f'{info.get("load_average", "n/a")})')
    if args.device == 'cpu':
        alloc = info['allocator']
        kept = ', freed memory kept for reuse' if alloc[
            'freed_memory_kept'] else ''
        print(f'  malloc: {alloc["name"]}{kept}')
    if args.amp or args.channels_last or args.cudnn_benchmark:
        print(f'  amp={args.amp} channels_last={args.channels_last} '
              f'cudnn_benchmark={args.cudnn_benchmark}')
    for r in results:
        lat = r['latency_s']
        print(f'\n{r["config"]}  [{r["scope"]} {r["model_type"]}]')
        print(f'  latency median {lat["median"]:.4f} s  (mean '
              f'{lat["mean"]:.4f}, min {lat["min"]:.4f}, max '
              f'{lat["max"]:.4f})   FPS {r["fps"]:.2f}')
        print(f'  peak memory {_fmt(r["peak_memory_mib"], " MiB", 1, 1)} '
              f'({r["peak_memory_kind"]})')
        print(f'  params {r["params"]:,} ({r["params"] / 1e6:.2f}M)')
        if args.flops:
            if r.get('flops') is None:
                print(f'  FLOPs: not counted ({r.get("flops_errors")})')
            else:
                parts = ', '.join(f'{k} {v / 1e9:.2f}'
                                  for k, v in r['flops_by_module'].items())
                print(f'  FLOPs {r["flops"] / 1e9:.3f} G (MACs, '
                      f'{r["flops_path"]} path; {parts})')
    out = dict(
        tool='tools/analysis/benchmark.py',
        mode=args.mode,
        shape=list(args.shape),
        batch=args.batch,
        iters=args.iters,
        warmup=args.warmup,
        amp=args.amp,
        channels_last=args.channels_last,
        cudnn_benchmark=args.cudnn_benchmark,
        interleave=args.interleave,
        machine=info,
        deform_conv_counting=DCN_COUNTING,
        models=results)
    if len(results) == 2:
        a, b = results

        def ratio(x, y):
            return None if x is None or y in (None, 0) else x / y

        out['ratio'] = dict(
            of=f'{a["config"]} / {b["config"]}',
            latency=ratio(a['latency_s']['median'], b['latency_s']['median']),
            fps=ratio(a['fps'], b['fps']),
            params=ratio(a['params'], b['params']),
            flops=ratio(a.get('flops'), b.get('flops')),
            peak_memory=ratio(a['peak_memory_mib'], b['peak_memory_mib']))
        if args.interleave:
            out['ratio']['latency_per_round'] = statistics.median(
                x / y for x, y in zip(a['latency_s']['all'],
                                      b['latency_s']['all']))
        r = out['ratio']
        print(f'\nratio {osp.basename(a["config"])} / '
              f'{osp.basename(b["config"])}: latency {_fmt(r["latency"])}, '
              f'FPS {_fmt(r["fps"])}, params {_fmt(r["params"])}, MACs '
              f'{_fmt(r["flops"])}, peak memory {_fmt(r["peak_memory"])}')
        if 'latency_per_round' in r:
            print(f'  interleaved: latency ratio per round (median) '
                  f'{_fmt(r["latency_per_round"])}; process peak memory '
                  f'{_fmt(a["process_peak_memory_mib"], " MiB", 1, 1)}')
    if args.flops:
        print(f'\nFLOPs: {DCN_COUNTING}.')
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(out, f, indent=2)
        print(f'wrote {args.json}')
    return out


def _positive(name: str, low: int):

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f'{name} must be an integer, got {text!r}')
        if value < low:
            raise argparse.ArgumentTypeError(
                f'{name} must be >= {low}, got {value}')
        return value

    return parse


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Latency, FPS, peak memory, parameters and FLOPs of an '
        'mmdet/mmseg model from its config.')
    parser.add_argument('config', help='config file, or mmdet::/mmseg::path')
    parser.add_argument('--compare', help='second config (same forms)')
    parser.add_argument(
        '--mode', choices=['inference', 'train'], default='inference')
    parser.add_argument(
        '--shape', nargs=2, type=_positive('--shape', 1), default=[512, 1024],
        metavar=('H', 'W'), help='input height and width (default 512 1024)')
    parser.add_argument('--batch', type=_positive('--batch', 1), default=1)
    parser.add_argument('--iters', type=_positive('--iters', 1), default=10)
    parser.add_argument('--warmup', type=_positive('--warmup', 0), default=3)
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument(
        '--threads', type=_positive('--threads', 1),
        help='torch CPU threads (default: torch\'s choice); 1 gives steadier '
        'CPU timings on a loaded machine')
    parser.add_argument(
        '--amp', choices=['float16', 'bfloat16'],
        help='run each step under torch.autocast with this dtype (train: '
        'AmpOptimWrapper)')
    parser.add_argument(
        '--channels-last', action='store_true',
        help='model parameters in torch.channels_last memory format')
    parser.add_argument(
        '--cudnn-benchmark', action='store_true',
        help='torch.backends.cudnn.benchmark = True (cuDNN algorithm search '
        'during the warm-up)')
    parser.add_argument('--checkpoint', help='weights to load (optional)')
    parser.add_argument('--json', help='write the figures to this file')
    parser.add_argument(
        '--no-flops', dest='flops', action='store_false',
        help='skip the FLOP count (one traced forward)')
    parser.add_argument(
        '--interleave', action='store_true',
        help='with --compare: build both models, then time them in rounds '
        '(one step of each per round), so that a drift of the machine '
        'reaches both alike; peak memory is then the process\'s, for both')
    parser.add_argument(
        '--cpu-malloc', choices=['default', 'reuse'], default='default',
        help="reuse: glibc malloc keeps freed memory for reuse, as mmfapn's "
        "runner sets it for CPU runs; default: glibc's own settings")
    args = parser.parse_args(argv)
    if args.interleave and not args.compare:
        parser.error('--interleave needs --compare OTHER_CONFIG')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: torch.cuda.is_available() is False '
                     f'(torch {torch.__version__})')
    args.shape = tuple(args.shape)
    return args


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)
    if args.cpu_malloc == 'reuse' and args.device == 'cpu':
        why_not = keep_freed_memory()
        if why_not is not None:
            raise SystemExit(f'benchmark: --cpu-malloc reuse: {why_not}')
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    paths = [args.config] + ([args.compare] if args.compare else [])
    if args.interleave:
        results = benchmark_models(paths, args)
    else:  # one after the other, each model freed before the next is built
        results = [benchmark_models([p], args)[0] for p in paths]
    info = machine_info(args.device)
    info['allocator'] = allocator()
    return report(results, info, args)

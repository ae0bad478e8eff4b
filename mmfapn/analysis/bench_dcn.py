"""Time mmfapn's modulated deformable conv alone, both implementations,
against a dense 3x3 conv of the same shape, interleaved in one process.

    python tools/analysis/bench_dcn.py [--inputs 512x1024 1024x2048]
        [--levels P2 P3 P4] [--channels 256] [--deform-groups 8]
        [--impls torch mmcv dense [torchvision]] [--modes fwd fwdbwd]
        [--repeat 5] [--max-case-seconds 60] [--device cpu|cuda]
        [--threads N [N ...]] [--dtype float32]
        [--baseline-kernel OLD_mdcn_torch.py] [--json PATH]

The layer shapes are FaPN's: the FAM's deformable conv at level Pi of an
input image HxW runs on a (1, C, H / 2**i, W / 2**i) map, 3x3, stride 1,
padding 1, ``deform_groups`` 8, C = 256 in and out (FaPN has FAMs at P2,
P3 and P4).  ``dense`` is ``F.conv2d`` with the same weight (PyTorch's own
CPU/CUDA convolution).  ``torchvision`` (not in the default set) is
``torchvision.ops.deform_conv2d`` with the mask: the same DCNv2 arithmetic
and offset layout, a compiled kernel to compare with where mmcv's CUDA ops
are not built.  On CUDA the device is synchronised before and after each
timed run.  Offsets are N(0, 2^2) pixels, masks uniform in (0, 1), as a
trained FaPN's are of that order; the timings do not depend on the values
much.

Interleaving.  Per case (threads, input, level, mode): one untimed warm-up
run of every implementation, then rounds in which every implementation
runs once, in an order that rotates from round to round, up to
``--repeat`` rounds (fewer if the case would exceed ``--max-case-seconds``;
a warm-up slower than that is itself the only measurement, marked
``cold``).  Medians are reported, and the ratios ``torch / dense`` and
``mmcv / torch`` both as the ratio of the medians and as the median of the
per-round ratios (on a shared machine the load changes between rounds far
less than within a round, so the second is the steadier).  ``fwd`` runs
under ``torch.no_grad()``; ``fwdbwd`` is forward plus backward to input,
offset, mask, weight and bias.  ``--threads 1 2`` runs everything at each
thread count.

Another kernel.  ``--baseline-kernel PATH`` loads another version of
``mmfapn/ops/mdcn_torch.py`` (e.g. ``git show REV:mmfapn/ops/mdcn_torch.py
> old.py``) as its own module and adds the implementation ``baseline``: the
PyTorch path with that file's forward and backward swapped in (the same
custom op, validation and chunk size), timed in the same rounds, with the
ratios ``torch / baseline`` and ``baseline / dense``.  On a host whose
speed drifts this is the way to compare two kernels: each round times
both.

bfloat16 products.  With ``MMFAPN_DCN_CPU_GEMM=bfloat16`` in the
environment the PyTorch path runs its matrix products in bfloat16 on CPU
(see :func:`mmfapn.ops.mdcn_torch.cpu_gemm_dtype`); the report records it
(``cpu_gemm``), and the dense conv stays float32.

Allocator.  The CPU allocator matters to the PyTorch path (glibc's malloc
maps and unmaps every block above its mmap threshold, at most 32 MiB, on
each call; jemalloc/tcmalloc cache them): the report names the one in use,
detected from ``LD_PRELOAD`` and the libraries mapped into the process,
and records the glibc version and ``MALLOC_*``/``GLIBC_TUNABLES`` settings.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` above the
memory held before the call; on CPU the rise of the process's peak resident
set size (Linux ``VmHWM``, reset through ``/proc/self/clear_refs`` before
each run) above the resident size before the run, i.e. what the call
allocated on top of its inputs.  ``im2col_mib`` is the size of one dense
im2col of the layer (C * 9 * H_out * W_out floats), the unit of the
PyTorch path's memory bound (see ``mmfapn.ops.mdcn_torch``).

The figures are printed as a table with the ratios, and written to
``--json`` with the machine, the allocator and the load average before and
after (timings taken on a shared machine are only as good as its load).
"""
import argparse
import contextlib
import importlib.util
import json
import os
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F

from mmfapn.ops import mdcn_torch, mmcv_ops_available, modulated_deform_conv2d
from mmfapn.ops.mdcn_torch import ENV_CPU_GEMM
from mmfapn.utils.env import machine_info, proc_status_kib, reset_peak_rss
from mmfapn.utils.malloc import allocator

LEVELS = {'P2': 4, 'P3': 8, 'P4': 16, 'P5': 32}
IMPLS = ('torch', 'mmcv', 'dense', 'torchvision')
DEFAULT_IMPLS = ('torch', 'mmcv', 'dense')
MODES = ('fwd', 'fwdbwd')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--inputs', nargs='+', default=['512x1024',
                                                        '1024x2048'],
                        help='image sizes HxW')
    parser.add_argument('--levels', nargs='+', default=['P2', 'P3', 'P4'],
                        choices=sorted(LEVELS))
    parser.add_argument('--channels', type=int, default=256)
    parser.add_argument('--deform-groups', type=int, default=8)
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--impls', nargs='+', default=list(DEFAULT_IMPLS),
                        choices=IMPLS)
    parser.add_argument('--modes', nargs='+', default=list(MODES),
                        choices=MODES)
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--max-case-seconds', type=float, default=60.0)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, nargs='+',
                        help="torch CPU thread counts, each run in turn "
                        "(default: torch's choice)")
    parser.add_argument('--dtype', default='float32',
                        choices=('float32', 'float64', 'float16',
                                 'bfloat16'))
    parser.add_argument('--baseline-kernel', metavar='PATH',
                        help='another mdcn_torch.py, timed as impl '
                        '"baseline" (see the module docstring)')
    parser.add_argument('--json', help='write the figures here')
    args = parser.parse_args(argv)
    if args.baseline_kernel and not os.path.isfile(args.baseline_kernel):
        parser.error('--baseline-kernel: no such file: '
                     f'{args.baseline_kernel!r}')
    sizes = []
    for text in args.inputs:
        try:
            h, w = (int(v) for v in text.lower().split('x'))
        except ValueError:
            parser.error(f'--inputs takes HxW, got {text!r}')
        if h < 1 or w < 1:
            parser.error(f'--inputs must be positive, got {text!r}')
        sizes.append((h, w))
    args.sizes = sizes
    if args.channels % args.deform_groups:
        parser.error(f'--channels {args.channels} is not divisible by '
                     f'--deform-groups {args.deform_groups}')
    if args.repeat < 1:
        parser.error(f'--repeat must be >= 1, got {args.repeat}')
    if args.threads and min(args.threads) < 1:
        parser.error(f'--threads must be >= 1, got {args.threads}')
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        parser.error('--device cuda but CUDA is not available')
    return args


class Case:
    """Inputs of one layer shape and the callables that run it."""

    def __init__(self, n, c, h, w, dg, device, dtype, baseline=None):
        g = torch.Generator().manual_seed(0)
        self.shape = (n, c, h, w)
        self.x = torch.randn(n, c, h, w, generator=g).to(device, dtype)
        self.offset = (2 * torch.randn(n, 2 * dg * 9, h, w, generator=g)).to(
            device, dtype)
        self.mask = torch.rand(n, dg * 9, h, w, generator=g).to(
            device, dtype)
        self.weight = (torch.randn(c, c, 3, 3, generator=g) /
                       (c * 9)**0.5).to(device, dtype)
        self.bias = torch.zeros(c).to(device, dtype)
        self.dg = dg
        self.device = torch.device(device)
        self.baseline = baseline

    def leaves(self, dense: bool) -> List[torch.Tensor]:
        ts = [self.x, self.weight, self.bias] if dense else [
            self.x, self.offset, self.mask, self.weight, self.bias
        ]
        return [t.detach().requires_grad_() for t in ts]

    def runner(self, impl: str, mode: str) -> Callable[[], None]:
        dense = impl == 'dense'

        def call(ts):
            if dense:
                x, w, b = ts
                return F.conv2d(x, w, b, padding=1)
            x, off, m, w, b = ts
            if impl == 'torchvision':
                from torchvision.ops import deform_conv2d
                return deform_conv2d(x, off, w, b, padding=1, mask=m)
            with _kernel(self.baseline if impl == 'baseline' else None):
                return modulated_deform_conv2d(
                    x, off, m, w, b, 1, 1, 1, self.dg,
                    impl='torch' if impl == 'baseline' else impl)

        if mode == 'fwd':
            ts = [t.detach() for t in self.leaves(dense)]

            def run():
                with torch.no_grad():
                    call(ts)
        else:
            ts = self.leaves(dense)

            def run():
                out = call(ts)
                with _kernel(self.baseline if impl == 'baseline' else None):
                    out.backward(torch.ones_like(out))
                for t in ts:
                    t.grad = None
        return run

    def sync(self):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)


def load_kernel(path: str):
    """Another ``mdcn_torch.py`` as a module of its own."""
    spec = importlib.util.spec_from_file_location('mmfapn_baseline_kernel',
                                                  path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def _kernel(module):
    """Run the PyTorch path with ``module``'s forward and backward (the
    custom op looks them up in :mod:`mmfapn.ops.mdcn_torch` per call)."""
    if module is None:
        yield
        return
    saved = mdcn_torch._forward, mdcn_torch._backward
    mdcn_torch._forward, mdcn_torch._backward = (module._forward,
                                                 module._backward)
    try:
        yield
    finally:
        mdcn_torch._forward, mdcn_torch._backward = saved


def _once(case: Case, run: Callable[[], None]):
    """Wall time and peak extra memory (bytes or None) of one run."""
    cuda = case.device.type == 'cuda'
    if cuda:
        torch.cuda.reset_peak_memory_stats(case.device)
        base = torch.cuda.memory_allocated(case.device)
    else:
        reset = reset_peak_rss()
        base = proc_status_kib('VmRSS') * 1024 if reset else None
    case.sync()
    t0 = time.perf_counter()
    run()
    case.sync()
    elapsed = time.perf_counter() - t0
    if cuda:
        peak = torch.cuda.max_memory_allocated(case.device) - base
    else:
        hwm = proc_status_kib('VmHWM')
        peak = hwm * 1024 - base if base is not None and hwm else None
    return elapsed, peak


def measure_interleaved(case: Case, runs: Dict[str, Callable[[], None]],
                        repeat: int,
                        max_seconds: float) -> Dict[str, Dict[str, object]]:
    """Per implementation: median time, all times and peak extra memory,
    the implementations timed in rotating order within each round."""
    names = list(runs)
    times = {k: [] for k in names}
    peaks = {k: [] for k in names}
    warm = {k: _once(case, runs[k]) for k in names}
    warm_total = sum(t for t, _ in warm.values())
    cold = warm_total > max_seconds
    if cold:
        for k in names:
            times[k].append(warm[k][0])
            peaks[k].append(warm[k][1])
    else:
        budget = max_seconds - warm_total
        for r in range(repeat):
            spent = 0.0
            for k in names[r % len(names):] + names[:r % len(names)]:
                t, p = _once(case, runs[k])
                times[k].append(t)
                peaks[k].append(p)
                spent += t
            budget -= spent
            if budget < spent:
                break
    out = {}
    for k in names:
        ps = [p for p in peaks[k] if p is not None]
        out[k] = dict(
            median_s=statistics.median(times[k]),
            times_s=times[k],
            cold=cold,
            peak_extra_mib=max(ps) / 2**20 if ps else None)
    return out


def _ratio(figs: Dict[str, Dict[str, object]], num: str,
           den: str) -> Optional[Dict[str, float]]:
    if num not in figs or den not in figs:
        return None
    a, b = figs[num]['times_s'], figs[den]['times_s']
    per_round = [x / y for x, y in zip(a, b)]
    return dict(of_medians=figs[num]['median_s'] / figs[den]['median_s'],
                median_per_round=statistics.median(per_round))


def machine() -> Dict[str, object]:
    """:func:`mmfapn.utils.env.machine_info` plus whether mmcv's compiled
    ops are there (the ``mmcv`` implementation needs them)."""
    info = machine_info('cuda' if torch.cuda.is_available() else None)
    info['mmcv_ops'] = mmcv_ops_available()
    return info


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    dtype = getattr(torch, args.dtype)
    impls = list(args.impls)
    if 'mmcv' in impls and not mmcv_ops_available():
        print("mmcv's compiled ops are missing: skipping impl 'mmcv'")
        impls.remove('mmcv')
    if 'torchvision' in impls:
        try:
            import torchvision.ops  # noqa: F401
        except ImportError as e:
            print(f"torchvision cannot be imported ({e}): skipping impl "
                  "'torchvision'")
            impls.remove('torchvision')
    baseline = None
    if args.baseline_kernel:
        baseline = load_kernel(args.baseline_kernel)
        impls.append('baseline')
    thread_counts = args.threads or [torch.get_num_threads()]
    # the torch path's matrix products: float32, or bfloat16 where
    # MMFAPN_DCN_CPU_GEMM=bfloat16 asks for it (CPU, float32 inputs)
    gemm = os.environ.get(ENV_CPU_GEMM, '').strip().lower() or 'float32'
    result = dict(machine=machine(), allocator=allocator(),
                  cpu_gemm=gemm,
                  load_before=os.getloadavg(),
                  args={k: v for k, v in vars(args).items()
                        if k != 'sizes'},
                  cases=[], ratios=[])
    print(f"machine: {result['machine']['cpu']}, "
          f"{result['machine']['cores']} cores; allocator "
          f"{result['allocator']['name']}; torch path's CPU matrix "
          f"products {gemm}; load average "
          f"{' '.join(f'{v:.2f}' for v in result['load_before'])}")
    header = (f'{"thr":>3} {"input":>10} {"level":>5} {"map":>9} '
              f'{"mode":>6} {"impl":>6} {"median s":>9} {"runs":>4} '
              f'{"peak MiB":>9} {"im2col MiB":>10}')
    print(header)
    for threads in thread_counts:
        torch.set_num_threads(threads)
        for (ih, iw) in args.sizes:
            for level in args.levels:
                s = LEVELS[level]
                h, w = ih // s, iw // s
                case = Case(args.batch, args.channels, h, w,
                            args.deform_groups, args.device, dtype,
                            baseline)
                im2col = args.batch * args.channels * 9 * h * w * \
                    torch.finfo(dtype).bits // 8 / 2**20
                for mode in args.modes:
                    runs = {impl: case.runner(impl, mode) for impl in impls}
                    figs = measure_interleaved(case, runs, args.repeat,
                                               args.max_case_seconds)
                    where = dict(threads=threads, input=[ih, iw],
                                 level=level, map=[h, w], mode=mode)
                    for impl in impls:
                        fig = figs[impl]
                        fig.update(where, impl=impl, im2col_mib=im2col,
                                   device=args.device, dtype=args.dtype)
                        result['cases'].append(fig)
                        peak = fig['peak_extra_mib']
                        peak = float('nan') if peak is None else peak
                        cold = 'c' if fig['cold'] else ' '
                        print(f'{threads:>3} {ih}x{iw:<5} {level:>5} '
                              f'{h:>4}x{w:<4} {mode:>6} {impl:>6} '
                              f'{fig["median_s"]:>9.3f} '
                              f'{len(fig["times_s"]):>3}{cold} {peak:>9.0f} '
                              f'{im2col:>10.0f}', flush=True)
                    texts = []
                    for num, den in (('mmcv', 'torch'),
                                     ('torchvision', 'torch'),
                                     ('torch', 'dense'),
                                     ('torch', 'baseline'),
                                     ('baseline', 'dense')):
                        r = _ratio(figs, num, den)
                        if r is None:
                            continue
                        result['ratios'].append(
                            dict(where, of=f'{num}/{den}', **r))
                        texts.append(f'{num}/{den} {r["of_medians"]:.2f}x '
                                     f'(per round '
                                     f'{r["median_per_round"]:.2f}x)')
                    if texts:
                        print(f'{"":>38}{", ".join(texts)}')
    result['load_after'] = os.getloadavg()
    print(f"load average after: "
          f"{' '.join(f'{v:.2f}' for v in result['load_after'])}")
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)
        print(f'wrote {args.json}')
    return 0

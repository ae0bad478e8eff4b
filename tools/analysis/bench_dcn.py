"""Time mmfapn's modulated deformable conv alone, both implementations,
against a dense 3x3 conv of the same shape.

    python tools/analysis/bench_dcn.py [--inputs 512x1024 1024x2048]
        [--levels P2 P3 P4] [--channels 256] [--deform-groups 8]
        [--impls torch mmcv dense [torchvision]] [--modes fwd fwdbwd]
        [--repeat 5] [--max-case-seconds 60] [--device cpu|cuda]
        [--threads N] [--json PATH]

The layer shapes are FaPN's: the FAM's deformable conv at level Pi of an
input image HxW runs on a (1, C, H / 2**i, W / 2**i) map, 3x3, stride 1,
padding 1, ``deform_groups`` 8, C = 256 in and out.  ``dense`` is
``F.conv2d`` with the same weight (PyTorch's own CPU/CUDA convolution).
``torchvision`` (not in the default set) is
``torchvision.ops.deform_conv2d`` with the mask: the same DCNv2 arithmetic
and offset layout, a compiled kernel to compare with where mmcv's CUDA ops
are not built.  On CUDA the device is synchronised before and after each
timed run.
Offsets are N(0, 2^2) pixels, masks uniform in (0, 1), as a trained FaPN's
are of that order; the timings do not depend on the values much.

Per case: one untimed warm-up run, then up to ``--repeat`` timed runs (fewer
if the case would exceed ``--max-case-seconds``; a warm-up slower than that
is itself the only measurement, marked ``cold``); the median is reported.
``fwd`` runs under ``torch.no_grad()``; ``fwdbwd`` is forward plus
backward to input, offset, mask, weight and bias.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` above the
memory held before the call; on CPU the rise of the process's peak resident
set size (Linux ``VmHWM``, reset through ``/proc/self/clear_refs`` before
each run) above the resident size before the run, i.e. what the call
allocated on top of its inputs (PyTorch's CPU allocator returns large
blocks to the system, so this tracks tensors).  ``im2col_mib`` is the size
of one dense im2col of the layer (C * 9 * H_out * W_out floats), the bound
the PyTorch path's column chunks are held to (see ``mmfapn.ops.mdcn_torch``).

The figures are printed as a table, with the ratios the issue asks about
(mmcv / torch and torch / dense per case), and written to ``--json`` with
the machine and the load average before and after (timings taken on a
shared machine are only as good as its load).
"""
import argparse
import json
import os
import os.path as osp
import platform
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional

import torch
import torch.nn.functional as F

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

from mmfapn.ops import mmcv_ops_available, modulated_deform_conv2d  # noqa

LEVELS = {'P2': 4, 'P3': 8, 'P4': 16, 'P5': 32}
IMPLS = ('torch', 'mmcv', 'dense', 'torchvision')
DEFAULT_IMPLS = ('torch', 'mmcv', 'dense')
MODES = ('fwd', 'fwdbwd')


def parse_args(argv=None) -> argparse.Namespace:
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
    parser.add_argument('--threads', type=int,
                        help="torch CPU threads (default: torch's choice)")
    parser.add_argument('--dtype', default='float32',
                        choices=('float32', 'float64', 'float16',
                                 'bfloat16'))
    parser.add_argument('--json', help='write the figures here')
    args = parser.parse_args(argv)
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
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        parser.error('--device cuda but CUDA is not available')
    return args


def _rss_kib(field: str) -> Optional[int]:
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


class Case:
    """Inputs of one layer shape and the callables that run it."""

    def __init__(self, n, c, h, w, dg, device, dtype):
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
            return modulated_deform_conv2d(x, off, m, w, b, 1, 1, 1,
                                           self.dg, impl=impl)

        if mode == 'fwd':
            ts = [t.detach() for t in self.leaves(dense)]

            def run():
                with torch.no_grad():
                    call(ts)
        else:
            ts = self.leaves(dense)

            def run():
                out = call(ts)
                out.backward(torch.ones_like(out))
                for t in ts:
                    t.grad = None
        return run

    def sync(self):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)


def measure(case: Case, run: Callable[[], None], repeat: int,
            max_seconds: float) -> Dict[str, object]:
    """Median time and peak extra memory of ``run``."""
    cuda = case.device.type == 'cuda'

    def once():
        if cuda:
            torch.cuda.reset_peak_memory_stats(case.device)
            base = torch.cuda.memory_allocated(case.device)
        else:
            reset = _reset_peak_rss()
            base = _rss_kib('VmRSS') * 1024 if reset else None
        case.sync()
        t0 = time.perf_counter()
        run()
        case.sync()
        elapsed = time.perf_counter() - t0
        if cuda:
            peak = torch.cuda.max_memory_allocated(case.device) - base
        else:
            hwm = _rss_kib('VmHWM')
            peak = hwm * 1024 - base if base is not None and hwm else None
        return elapsed, peak

    warm_t, warm_peak = once()
    if warm_t > max_seconds:
        times, peaks, cold = [warm_t], [warm_peak], True
    else:
        times, peaks, cold = [], [], False
        budget = max_seconds - warm_t
        for _ in range(repeat):
            t, p = once()
            times.append(t)
            peaks.append(p)
            budget -= t
            if budget < t:
                break
    peaks = [p for p in peaks if p is not None]
    return dict(
        median_s=statistics.median(times),
        times_s=times,
        cold=cold,
        peak_extra_mib=max(peaks) / 2**20 if peaks else None)


def machine() -> Dict[str, object]:
    info = dict(
        platform=platform.platform(),
        processor=platform.processor() or platform.machine(),
        cpu_count=os.cpu_count(),
        torch=torch.__version__,
        torch_threads=torch.get_num_threads(),
        mmcv_ops=mmcv_ops_available())
    try:
        with open('/proc/cpuinfo') as f:
            names = [l.split(':', 1)[1].strip() for l in f
                     if l.startswith('model name')]
        if names:
            info['cpu'] = names[0]
    except OSError:
        pass
    if torch.cuda.is_available():
        info['cuda_device'] = torch.cuda.get_device_name()
    return info


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
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
    result = dict(machine=machine(), load_before=os.getloadavg(),
                  args={k: v for k, v in vars(args).items()
                        if k != 'sizes'},
                  cases=[])
    print(f"machine: {result['machine'].get('cpu', '?')}, "
          f"{result['machine']['cpu_count']} cores, torch threads "
          f"{result['machine']['torch_threads']}; load average "
          f"{' '.join(f'{v:.2f}' for v in result['load_before'])}")
    header = (f'{"input":>10} {"level":>5} {"map":>9} {"mode":>6} '
              f'{"impl":>6} {"median s":>9} {"runs":>4} {"peak MiB":>9} '
              f'{"im2col MiB":>10}')
    print(header)
    for (ih, iw) in args.sizes:
        for level in args.levels:
            s = LEVELS[level]
            h, w = ih // s, iw // s
            case = Case(args.batch, args.channels, h, w, args.deform_groups,
                        args.device, dtype)
            im2col = args.batch * args.channels * 9 * h * w * \
                torch.finfo(dtype).bits // 8 / 2**20
            for mode in args.modes:
                row = {}
                for impl in impls:
                    fig = measure(case, case.runner(impl, mode), args.repeat,
                                  args.max_case_seconds)
                    fig.update(input=[ih, iw], level=level, map=[h, w],
                               mode=mode, impl=impl, im2col_mib=im2col,
                               device=args.device, dtype=args.dtype)
                    result['cases'].append(fig)
                    row[impl] = fig['median_s']
                    peak = fig['peak_extra_mib']
                    peak = float('nan') if peak is None else peak
                    cold = 'c' if fig['cold'] else ' '
                    print(f'{ih}x{iw:<5} {level:>5} {h:>4}x{w:<4} '
                          f'{mode:>6} {impl:>6} {fig["median_s"]:>9.3f} '
                          f'{len(fig["times_s"]):>3}{cold} {peak:>9.0f} '
                          f'{im2col:>10.0f}', flush=True)
                ratios = []
                if 'mmcv' in row and 'torch' in row:
                    ratios.append(
                        f'mmcv/torch {row["mmcv"] / row["torch"]:.1f}x')
                if 'torchvision' in row and 'torch' in row:
                    ratios.append('torchvision/torch '
                                  f'{row["torchvision"] / row["torch"]:.1f}x')
                if 'dense' in row and 'torch' in row:
                    ratios.append(
                        f'torch/dense {row["torch"] / row["dense"]:.2f}x')
                if ratios:
                    print(f'{"":>34}{", ".join(ratios)}')
    result['load_after'] = os.getloadavg()
    print(f"load average after: "
          f"{' '.join(f'{v:.2f}' for v in result['load_after'])}")
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)
        print(f'wrote {args.json}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

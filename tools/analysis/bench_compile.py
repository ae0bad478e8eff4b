"""Eager vs ``torch.compile`` inference of whole FaPN models, in one run.

    python tools/analysis/bench_compile.py [--case NAME ...] [--iters N]
        [--warmup N] [--device cpu|cuda] [--backend inductor] [--json PATH]

Each case is a config and an input size.  The network forward (backbone,
neck and decode head, as ``model(inputs, mode='tensor')``; for a cascade
such as PointRend, whose point head needs the sampling of ``predict``, the
first head, i.e. PointRend's semantic FPN head; the data preprocessor runs
once, outside the timing) is timed eager and compiled
(``torch.compile(model)``, dynamic=False) alternately, ``--iters`` times
each after ``--warmup`` untimed calls, under ``torch.no_grad()``; the
median, min and max of each and the ratio compiled / eager of the medians
are printed, with the compile time (first call) and the largest output
difference.  Models are built as ``tools/analysis/benchmark.py`` builds
them (:mod:`mmfapn.analysis.benchmark`: random weights, nothing
downloaded, synthetic scenes).

Cases (``--case``, default all):

* ``demo``: the FaPN model of ``make demo`` at its training crop;
* ``pointrend-r50``: PointRend R50 FaPN semantic (the paper's Table 1
  model) at 512x1024.
"""
import argparse
import copy
import json
import os.path as osp
import statistics
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from mmfapn.analysis import benchmark as bench
from mmfapn.apis import config_scope, read_config
from mmfapn.utils.config_files import config_path
from mmfapn.utils.env import machine_info

CASES = {  # name: (shipped config as the repository names it, input size)
    'demo': ('configs/seg/demo/sem-fpn_r18_fapn_toycity-demo.py', None),
    'pointrend-r50': (
        'configs/seg/point_rend/pointrend_r50_fapn_8xb4-65k_'
        'cityscapes-512x1024.py', (512, 1024)),
}


class NetworkForward(torch.nn.Module):
    """Backbone, neck and (first) decode head of an mmseg segmentor."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        heads = model.decode_head
        self.head = heads[0] if isinstance(heads, torch.nn.ModuleList) \
            else heads

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.head(self.model.extract_feat(inputs))


def _crop_size(cfg) -> Tuple[int, int]:
    size = (cfg.model.get('data_preprocessor') or {}).get('size')
    if size is None:
        raise ValueError('bench_compile: the config has no crop size '
                         '(model.data_preprocessor.size); give the case one')
    return tuple(size)


def _sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def _call(fn, inputs, device: str) -> Tuple[float, Any]:
    _sync(device)
    start = time.perf_counter()
    out = fn(inputs)
    _sync(device)
    return time.perf_counter() - start, out


def _max_diff(a, b) -> float:
    if isinstance(a, torch.Tensor):
        return float((a.float() - b.float()).abs().max())
    return max(_max_diff(x, y) for x, y in zip(a, b))


def _stats(times: List[float]) -> Dict[str, float]:
    return dict(median=statistics.median(times), min=min(times),
                max=max(times), all=times)


def run_case(name: str, args) -> Dict[str, Any]:
    path, shape = CASES[name]
    cfg = read_config(config_path(osp.relpath(path, 'configs')))
    scope = config_scope(cfg, path)
    shape = shape or _crop_size(cfg)
    torch.manual_seed(0)
    segmentor = bench.build_model(cfg, scope, shape, None,
                                  args.device).eval()
    data = bench.make_batch(segmentor, scope, shape, 1)
    inputs = segmentor.data_preprocessor(copy.deepcopy(data),
                                         False)['inputs']
    model = NetworkForward(segmentor).eval()
    torch._dynamo.reset()
    compiled = torch.compile(model, backend=args.backend, dynamic=False)
    with torch.no_grad():
        compile_s, out_c = _call(compiled, inputs, args.device)
        _, out_e = _call(model, inputs, args.device)
        for _ in range(args.warmup):
            _call(model, inputs, args.device)
            _call(compiled, inputs, args.device)
        eager, comp = [], []
        for i in range(args.iters):
            eager.append(_call(model, inputs, args.device)[0])
            comp.append(_call(compiled, inputs, args.device)[0])
            print(f'  {name}: {i + 1}/{args.iters} eager {eager[-1]:.3f} s, '
                  f'compiled {comp[-1]:.3f} s', file=sys.stderr)
    result = dict(
        case=name, config=path, shape=list(shape),
        eager_s=_stats(eager), compiled_s=_stats(comp),
        compile_first_call_s=compile_s,
        max_abs_output_diff=_max_diff(out_c, out_e))
    result['ratio_compiled_over_eager'] = (
        result['compiled_s']['median'] / result['eager_s']['median'])
    return result


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='eager vs torch.compile inference of FaPN models')
    parser.add_argument('--case', action='append', choices=sorted(CASES),
                        help='case to run (repeatable; default all)')
    parser.add_argument('--iters', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--backend', default='inductor')
    parser.add_argument('--json', help='write the figures to this file')
    args = parser.parse_args(argv)
    if args.iters < 1 or args.warmup < 0:
        parser.error(f'need --iters >= 1 and --warmup >= 0, got '
                     f'{args.iters} and {args.warmup}')
    return args


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)
    results = [run_case(c, args) for c in args.case or CASES]
    report = dict(machine=machine_info(args.device), backend=args.backend,
                  iters=args.iters, warmup=args.warmup, results=results)
    print(f"{'case':<15} {'shape':>10} {'eager s':>9} {'compiled s':>11} "
          f"{'ratio':>6} {'compile s':>10}")
    for r in results:
        print(f"{r['case']:<15} {'x'.join(map(str, r['shape'])):>10} "
              f"{r['eager_s']['median']:9.3f} "
              f"{r['compiled_s']['median']:11.3f} "
              f"{r['ratio_compiled_over_eager']:6.2f} "
              f"{r['compile_first_call_s']:10.1f}")
    info = report['machine']
    print(f"machine: {info.get('cpu')}, {info['torch_threads']} threads, "
          f"torch {info['torch']}, load {info.get('load_average_1min')}")
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == '__main__':
    main()

#!/usr/bin/env bash
# CPU speed of the PyTorch deformable conv: the op against a dense conv,
# and PointRend R-50 FaPN against FPN, the figures behind docs/speed.md's
# "CPU deformable conv" subsection.  About 10 minutes on an idle 2-core VM;
# run it on an idle machine (the load average is recorded in every JSON).
#
#     bash tools/analysis/bench_dcn_cpu.sh [OUT_DIR]     # default docs/benchmarks
#
# 1. the op at P2 of 512x1024 (2 threads, float32, the default allocator),
#    9 interleaved rounds of torch and dense;
# 2. every FaPN level (P2 to P5) of 512x1024 and 1024x2048, 1 and 2
#    threads, 5 interleaved rounds (fewer for cases over 40 s);
# 3. PointRend R-50 FaPN vs FPN at 512x1024, 2 threads, the two models
#    timed in interleaved rounds: inference (MACs counted) and train step,
#    the train step also with glibc's malloc set as mmfapn's runner sets it
#    on CPU (--cpu-malloc reuse: freed memory is reused instead of being
#    unmapped and page-faulted again; see docs/speed.md); prints time
#    ratio / MAC ratio.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
OUT=${1:-docs/benchmarks}
mkdir -p "$OUT"
FAPN=configs/seg/point_rend/pointrend_r50_fapn_4xb2-80k_cityscapes-512x1024.py
FPN=mmseg::point_rend/pointrend_r50_4xb2-80k_cityscapes-512x1024.py
echo "[bench_dcn_cpu] $(date -u +%H:%M:%S) load: $(uptime)"

"$PY" tools/analysis/bench_dcn.py --inputs 512x1024 --levels P2 \
    --threads 2 --impls torch dense --repeat 9 \
    --json "$OUT/bench_dcn_cpu_512x1024_P2_2threads.json"

"$PY" tools/analysis/bench_dcn.py --inputs 512x1024 1024x2048 \
    --levels P2 P3 P4 P5 --threads 1 2 --impls torch dense --repeat 5 \
    --max-case-seconds 40 --json "$OUT/bench_dcn_cpu_levels.json"

"$PY" tools/analysis/benchmark.py "$FAPN" --compare "$FPN" --interleave \
    --mode inference --threads 2 --iters 7 --warmup 2 \
    --json "$OUT/pointrend_r50_fapn_vs_fpn_cpu_inference_512x1024_2threads.json"

"$PY" tools/analysis/benchmark.py "$FAPN" --compare "$FPN" --interleave \
    --mode train --threads 2 --iters 5 --warmup 1 --no-flops \
    --json "$OUT/pointrend_r50_fapn_vs_fpn_cpu_train_512x1024_2threads.json"

"$PY" tools/analysis/benchmark.py "$FAPN" --compare "$FPN" --interleave \
    --mode train --threads 2 --iters 5 --warmup 1 --no-flops \
    --cpu-malloc reuse \
    --json "$OUT/pointrend_r50_fapn_vs_fpn_cpu_train_512x1024_2threads_reuse.json"

"$PY" - "$OUT" <<'EOF'
import json, os.path as osp, sys
out = sys.argv[1]
inf = json.load(open(osp.join(
    out, 'pointrend_r50_fapn_vs_fpn_cpu_inference_512x1024_2threads.json')))
mac = inf['ratio']['flops']
for mode, name in (('inference', 'inference_512x1024_2threads'),
                   ('train', 'train_512x1024_2threads'),
                   ('train, --cpu-malloc reuse',
                    'train_512x1024_2threads_reuse')):
    d = json.load(open(osp.join(
        out, f'pointrend_r50_fapn_vs_fpn_cpu_{name}.json')))
    lat = d['ratio']['latency']
    print(f'PointRend R-50 FaPN / FPN {mode}: time ratio {lat:.3f}, MAC '
          f'ratio {mac:.3f}, time ratio / MAC ratio {lat / mac:.3f} '
          f'(load {d["machine"].get("load_average", 0):.2f})')
EOF
echo "[bench_dcn_cpu] $(date -u +%H:%M:%S) done; load: $(uptime)"

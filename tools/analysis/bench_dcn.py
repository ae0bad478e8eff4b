"""The deformable conv alone against a dense 3x3 conv, interleaved in one
process (every FaPN level, 1 and more threads, the allocator in use).

    python tools/analysis/bench_dcn.py [--inputs 512x1024 1024x2048]
        [--levels P2 P3 P4] [--impls torch mmcv dense [torchvision]]
        [--modes fwd fwdbwd] [--repeat 5] [--threads N [N ...]]
        [--device cpu|cuda] [--dtype float32] [--json PATH]

What is measured and how: docs/speed.md; the library is
``mmfapn.analysis.bench_dcn``.
"""
import sys

from mmfapn.analysis.bench_dcn import main, parse_args  # noqa: F401

if __name__ == '__main__':
    sys.exit(main())

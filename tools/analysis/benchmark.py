"""Speed and complexity of a model built from a config (mmdet or mmseg).

    python tools/analysis/benchmark.py CONFIG [--compare OTHER_CONFIG]
        [--mode inference|train] [--shape H W] [--batch N] [--iters N]
        [--warmup N] [--device cpu|cuda] [--checkpoint PATH] [--json PATH]
        [--amp float16|bfloat16] [--channels-last] [--cudnn-benchmark]

What is measured and how (latency, FPS, peak memory, parameters, MACs with
deformable convs counted): docs/user_guides/analysis_tools.md; the library
is ``mmfapn.analysis.benchmark``.
"""
from mmfapn.analysis.benchmark import main, parse_args  # noqa: F401

if __name__ == '__main__':
    main()

"""Analyses of mmfapn models: the FaPN coverage sweep of the stock mmdet
and mmseg configs (:mod:`mmfapn.analysis.coverage`) and the speed and
complexity benchmark behind ``tools/analysis/benchmark.py``
(:mod:`mmfapn.analysis.benchmark`)."""

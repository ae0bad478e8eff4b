"""Analyses of mmfapn models: the FaPN coverage sweep of the stock mmdet
and mmseg configs (:mod:`mmfapn.analysis.coverage`)."""

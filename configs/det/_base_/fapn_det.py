# Shared by every mmfapn detection config, inherited next to the stock mmdet
# config that it modifies (mmengine forbids a key in two bases, so `model`
# stays in each config: only `neck=dict(type='FaPN')`).  The plugin import,
# the checkpoint hardening and the runner (DataCheckedRunner) come from the
# fragment of every mmfapn config.
_base_ = '../../_base_/mmfapn.py'

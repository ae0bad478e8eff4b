# Shared by every mmfapn detection config, inherited next to the stock mmdet
# config that it modifies (mmengine forbids a key in two bases, so `model`
# stays in each config: only `neck=dict(type='FaPN')`).
_base_ = '../../_base_/mmfapn.py'

# mmfapn's Runner checks data_root, the annotation files and the image
# folders of each dataloader/evaluator before it is built, so that a missing
# path or a malformed COCO JSON fails with one message naming the file.
runner_type = 'DataCheckedRunner'

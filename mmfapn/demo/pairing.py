"""What makes the demo's seeds *paired*: for each seed, FPN and FaPN start
from the same backbone weights and see the same batches.

- :func:`write_backbone_init` draws the backbone's initial weights once
  per seed (the config's backbone, built alone after seeding torch, its
  own ``init_weights``) and saves them; both models load that file through
  ``backbone.init_cfg = dict(type='Pretrained', checkpoint=...)``.  (With
  seeding alone the backbone would not be the same: mmengine initialises
  the weights after the whole model is built, and FaPN's neck draws more
  random numbers than FPN's before that.)
- the data order comes from the Runner's seed (sampler and the
  augmentations' generators), the same for both models;
- :class:`PairingHook` records a digest of the backbone weights when
  training starts and a running digest of every training batch, so the
  report can state (and the demo checks) that each pair matched.
"""
import hashlib
import os
import os.path as osp

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


def state_digest(module: torch.nn.Module) -> str:
    """SHA-1 of a module's state dict (names, shapes and values)."""
    h = hashlib.sha1()
    for name, value in sorted(module.state_dict().items()):
        h.update(name.encode())
        t = value.detach().cpu().contiguous()
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def write_backbone_init(cfg, seed: int, path: str) -> str:
    """Save the initial weights of ``cfg.model.backbone`` for ``seed``
    (``{'state_dict': ...}``) to ``path``; returns their digest."""
    import copy

    from mmengine.registry import init_default_scope
    from mmengine.runner import set_random_seed
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    from mmseg.registry import MODELS
    backbone_cfg = copy.deepcopy(cfg.model.backbone)
    backbone_cfg.pop('init_cfg', None)
    set_random_seed(seed)
    backbone = MODELS.build(backbone_cfg)
    backbone.init_weights()
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    torch.save(dict(state_dict=backbone.state_dict()), path)
    return state_digest(backbone)


@HOOKS.register_module()
class PairingHook(Hook):
    """Digest of the backbone at the start of training
    (:attr:`backbone_digest`) and of every training batch's images and
    label maps, in order (:attr:`data_digest`)."""
    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self.backbone_digest = None
        self._data = hashlib.sha1()
        self.num_batches = 0

    def before_train(self, runner) -> None:
        model = runner.model
        model = getattr(model, 'module', model)
        self.backbone_digest = state_digest(model.backbone)

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if data_batch is None:
            return
        for img in data_batch['inputs']:
            self._data.update(img.contiguous().numpy().tobytes())
        for sample in data_batch['data_samples']:
            self._data.update(sample.gt_sem_seg.data.contiguous().numpy()
                              .tobytes())
        self.num_batches += 1

    @property
    def data_digest(self) -> str:
        return self._data.hexdigest()

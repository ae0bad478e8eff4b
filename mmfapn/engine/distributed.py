"""Distributed training that also runs on machines without CUDA.

mmengine 0.10.7 assumes CUDA for distributed runs: ``init_dist`` calls
``torch.cuda.set_device`` (an ``AttributeError`` on a CPU build of torch),
stock configs ask for the ``nccl`` backend, the Runner passes
``device_ids=[LOCAL_RANK]`` to ``DistributedDataParallel`` (rejected for a
CPU module), and ``SyncBatchNorm`` refuses CPU tensors.  On a machine
without CUDA, :func:`setup_distributed` (called by ``tools/train.py`` and
``tools/test.py``) therefore

- switches ``env_cfg.dist_cfg.backend`` to ``gloo`` and initialises the
  process group itself (``pytorch`` launcher: torchrun's environment;
  ``slurm``: ``SLURM_*`` variables), with a logged warning;
- selects :class:`DeviceAgnosticDistributedDataParallel` as the model
  wrapper, which converts SyncBN layers to BN (with a logged warning: each
  process then normalises over its own batch; running statistics are
  averaged over the processes after each step) and leaves ``device_ids``
  unset for a CPU module.

On a CUDA machine nothing changes: mmengine's own code path runs.
"""
import logging
import os
import subprocess
from datetime import timedelta
from typing import Dict, List, Optional

import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.model import MMDistributedDataParallel, revert_sync_batchnorm
from mmengine.registry import MODEL_WRAPPERS
from torch import nn

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')


def _sync_batchnorm_names(module: nn.Module) -> List[str]:
    kinds = [nn.SyncBatchNorm]
    try:
        from mmcv.ops import SyncBatchNorm as MMCVSyncBatchNorm
        kinds.append(MMCVSyncBatchNorm)
    except ImportError:
        pass
    return [
        n for n, m in module.named_modules() if isinstance(m, tuple(kinds))
    ]


def count_sync_batchnorm(module: nn.Module) -> int:
    """Number of SyncBN layers (torch's or mmcv's) in ``module``."""
    return len(_sync_batchnorm_names(module))


@MODEL_WRAPPERS.register_module()
class DeviceAgnosticDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that also wraps a CPU module.

    For a module on CUDA it is exactly ``MMDistributedDataParallel``.  For a
    module on the CPU (``gloo`` backend) it

    - converts SyncBN to BN with a logged warning (torch's SyncBN refuses
      CPU tensors): each process normalises with its own batch statistics;
    - averages the running mean/var of those layers over the processes
      after every training step, so every rank holds the same model (and
      the checkpoint that rank 0 writes is what each rank has), as with
      SyncBN;
    - drops ``device_ids``/``output_device``, which DDP accepts only for
      single-device GPU modules.

    Args:
        module (nn.Module): the model (already on its device).
        device_ids (list[int], optional): GPU ids; ignored on the CPU.
        **kwargs: passed to ``MMDistributedDataParallel``.
    """

    def __init__(self,
                 module: nn.Module,
                 device_ids: Optional[list] = None,
                 **kwargs) -> None:
        devices = {p.device.type for p in module.parameters()}
        converted: List[str] = []
        if devices <= {'cpu'}:
            converted = _sync_batchnorm_names(module)
            if converted:
                print_log(
                    f'No CUDA: converted {len(converted)} SyncBatchNorm '
                    'layers to BatchNorm; each process normalises over its '
                    'own batch, running statistics are averaged over the '
                    'processes after each step',
                    logger='current',
                    level=logging.WARNING)
                module = revert_sync_batchnorm(module)
            device_ids = None
            kwargs.pop('output_device', None)
        super().__init__(module=module, device_ids=device_ids, **kwargs)
        modules = dict(self.module.named_modules())
        self._converted_bn = [modules[n] for n in converted]

    def train_step(self, data, optim_wrapper) -> Dict[str, torch.Tensor]:
        losses = super().train_step(data, optim_wrapper)
        if self._converted_bn:
            self._average_bn_statistics()
        return losses

    @torch.no_grad()
    def _average_bn_statistics(self) -> None:
        stats = [
            t for m in self._converted_bn
            for t in (m.running_mean, m.running_var) if t is not None
        ]
        if not stats:
            return
        flat = torch.cat([t.reshape(-1) for t in stats])
        torch_dist.all_reduce(flat)
        flat /= torch_dist.get_world_size()
        offset = 0
        for t in stats:
            t.copy_(flat[offset:offset + t.numel()].view_as(t))
            offset += t.numel()


def _slurm_env() -> None:
    """torchrun-style variables from SLURM's (as mmengine's slurm init)."""
    os.environ.setdefault('RANK', os.environ['SLURM_PROCID'])
    os.environ.setdefault('WORLD_SIZE', os.environ['SLURM_NTASKS'])
    os.environ.setdefault('LOCAL_RANK', os.environ.get('SLURM_LOCALID', '0'))
    os.environ.setdefault('MASTER_PORT', '29500')
    if 'MASTER_ADDR' not in os.environ:
        nodes = os.environ['SLURM_NODELIST']
        os.environ['MASTER_ADDR'] = subprocess.getoutput(
            f'scontrol show hostname {nodes} | head -n1')


def setup_distributed(cfg: Config, launcher: str) -> None:
    """Prepare ``cfg`` (and, without CUDA, the process group) for
    ``launcher``.  A no-op for ``launcher='none'`` and on CUDA machines.

    Raises:
        ValueError: unknown launcher, or a launcher whose environment
            variables are missing (e.g. ``pytorch`` not started by torchrun).
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f'unknown launcher {launcher!r}; expected one of '
                         f'{LAUNCHERS}')
    cfg.launcher = launcher
    if launcher == 'none' or torch.cuda.is_available():
        return
    if launcher == 'mpi':
        raise ValueError('launcher=mpi needs CUDA in mmengine; use '
                         'launcher=pytorch (torchrun) on a CPU machine')
    if launcher == 'slurm':
        _slurm_env()
    missing = [v for v in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')
               if v not in os.environ]
    if missing:
        raise ValueError(
            f'launcher={launcher!r} but {", ".join(missing)} not set; start '
            'with tools/dist_train.sh (torchrun) or tools/slurm_train.sh')

    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    if dist_cfg.get('backend', 'nccl') != 'gloo':
        print_log(
            f'No CUDA: using the gloo backend instead of '
            f'{dist_cfg.get("backend", "nccl")!r}',
            logger='current',
            level=logging.WARNING)
    dist_cfg['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg') or {}
    if wrapper.get('type', 'MMDistributedDataParallel') in (
            'MMDistributedDataParallel', 'DistributedDataParallel'):
        wrapper['type'] = 'DeviceAgnosticDistributedDataParallel'
        wrapper.setdefault('broadcast_buffers', False)
        wrapper.setdefault('find_unused_parameters',
                           cfg.get('find_unused_parameters', False))
        cfg.model_wrapper_cfg = wrapper
    if not torch_dist.is_initialized():
        # mmengine's init_dist would call torch.cuda.set_device first.
        timeout = dist_cfg.get('timeout', 1800)
        torch_dist.init_process_group(
            backend='gloo',
            rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']),
            timeout=timedelta(seconds=timeout))

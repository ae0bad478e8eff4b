"""A resumed run that continues the interrupted one bit for bit.

mmengine's ``Runner.resume`` restores the weights, the optimizer, the
parameter schedulers, the message hub and the seed, and an iteration-based
loop replays the data loader up to the checkpoint's iteration.  It does not
restore the random generators that the data pipeline (random resize, crop,
flip), the model (dropout, the RPN/ROI samplers of mmdet) and the data
preprocessor draw from: from the first iteration after a resume, a run
diverges from the uninterrupted one.  :class:`ExactResumeHook` closes the
gaps:

- Each checkpoint gets, in ``meta['exact_resume']``, every rank's generator
  states (``random``, NumPy, torch CPU and each initialised CUDA device, see
  :mod:`mmfapn.engine.rng_state`), the seed of its data sampler and of its
  data loader workers.  With several processes, the ranks' states are
  gathered just before ``CheckpointHook`` saves.
- On ``--resume``, each rank sets its generators back to its saved state at
  the point where the uninterrupted run drew next: in an iteration-based
  loop, after mmengine's replay of the data loader (which also brings data
  loader workers to the same state as in the uninterrupted run); in an
  epoch-based loop, before the next epoch starts.  A sampler or worker seed
  that differs from the saved one (``randomness.seed=None`` draws a new seed
  in every run) is set back to the saved one before any data is drawn.
- Validation does not consume the training generators (they are saved
  before and restored after it), so a run resumed from a checkpoint that
  was followed by a validation continues as the uninterrupted run did.
- Epoch-based loops with worker processes: the workers are seeded at the
  start of each epoch from ``(seed, epoch, rank, worker id)`` and restarted
  every epoch (also with ``persistent_workers=True``, whose workers would
  otherwise carry random state from epoch to epoch that a resumed run does
  not have).
- ``CheckpointHook`` deletes the checkpoints beyond ``max_keep_ckpts``
  *before* it writes the new one; with ``max_keep_ckpts=1`` a kill during
  the write would leave no checkpoint at all.  The deletions are deferred
  until the new checkpoint is on disk.
- ``--resume`` without a file (``resume=True``, ``load_from=None``) resumes
  from :func:`~mmfapn.engine.atomic_checkpoint.find_latest_checkpoint`:
  the newest complete checkpoint, not blindly the one ``last_checkpoint``
  names.

A checkpoint without this state (written by a run without the hook) still
resumes, with one warning line saying that the continuation will not be
bit-exact.  So does one written with a different number of processes.

Installed by :class:`~mmfapn.engine.exact_resume_runner.ExactResumeRunner`
(the base of ``DataCheckedRunner``, the ``runner_type`` of every mmfapn
config); in a config with another runner::

    custom_hooks = [dict(type='ExactResumeHook')]
"""
import logging
import random
from functools import partial
from typing import Dict, List, Optional

import numpy as np
import torch
from mmengine.dataset import worker_init_fn as mmengine_worker_init_fn
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS
from mmengine.runner import BaseLoop, IterBasedTrainLoop
from mmengine.runner.loops import _InfiniteDataloaderIterator

from .atomic_checkpoint import find_latest_checkpoint
from .rng_state import capture_rng_state, restore_rng_state

STATE_KEY = 'exact_resume'
STATE_VERSION = 1


def epoch_worker_init_fn(worker_id: int, num_workers: int, rank: int,
                         seed: int, epoch: int) -> None:
    """Seed a data loader worker from ``(seed, epoch, rank, worker_id)``.

    Used by :class:`ExactResumeHook` in epoch-based loops: a worker's
    generators depend on nothing but where it is in the run, so a run
    resumed at an epoch boundary starts its workers as the uninterrupted
    run did.  (``num_workers`` is accepted for mmengine's signature.)
    """
    state = np.random.SeedSequence([seed, epoch, rank, worker_id])
    worker_seed = int(state.generate_state(1)[0])
    random.seed(worker_seed)
    np.random.seed(worker_seed)
    torch.manual_seed(worker_seed)


def _sampler(dataloader):
    """The sampler that holds the data order's seed (mmdet's batch samplers
    wrap it; torch then adds a default sampler of its own)."""
    batch_sampler = getattr(dataloader, 'batch_sampler', None)
    inner = getattr(batch_sampler, 'sampler', None)
    if hasattr(inner, 'seed'):
        return inner
    return getattr(dataloader, 'sampler', None)


def _worker_seed(dataloader) -> Optional[int]:
    fn = getattr(dataloader, 'worker_init_fn', None)
    if isinstance(fn, partial) and fn.func in (mmengine_worker_init_fn,
                                               epoch_worker_init_fn):
        return fn.keywords.get('seed')
    return None


def _set_worker_seed(dataloader, seed: int) -> None:
    fn = dataloader.worker_init_fn
    dataloader.worker_init_fn = partial(fn.func, *fn.args,
                                        **dict(fn.keywords, seed=seed))


def _stop_workers(dataloader) -> None:
    """Shut down the persistent workers of ``dataloader`` (torch keeps them
    in ``_iterator``), so that the next ``iter()`` starts new ones."""
    iterator = getattr(dataloader, '_iterator', None)
    if iterator is not None and hasattr(iterator, '_shutdown_workers'):
        iterator._shutdown_workers()
    if iterator is not None:
        dataloader._iterator = None


class _DeferredRemoval:
    """A file backend whose ``remove``/``rmtree`` wait for :meth:`flush`.

    ``CheckpointHook`` removes the oldest checkpoint before writing the new
    one; through this wrapper the removal happens after the write.
    """

    def __init__(self, backend) -> None:
        self._backend = backend
        self._pending: List[tuple] = []

    def remove(self, path) -> None:
        self._pending.append(('remove', path))

    def rmtree(self, path) -> None:
        self._pending.append(('rmtree', path))

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        for method, path in pending:
            getattr(self._backend, method)(path)

    def __getattr__(self, name):
        return getattr(self._backend, name)


class _RestoreAfterReplay:
    """Stands in for ``IterBasedTrainLoop.dataloader_iterator`` on resume:
    the loop's replay of ``replay`` batches goes to the real iterator; just
    before the first new batch is drawn, ``restore()`` runs and the real
    iterator takes its place again."""

    def __init__(self, loop, replay: int, restore) -> None:
        self._loop = loop
        self._inner = loop.dataloader_iterator
        self._left = replay
        self._restore = restore

    def __iter__(self):
        return self

    def __next__(self):
        if self._left > 0:
            self._left -= 1
            return next(self._inner)
        self._restore()
        self._loop.dataloader_iterator = self._inner
        return next(self._inner)

    def __getattr__(self, name):
        return getattr(self._inner, name)


@HOOKS.register_module()
class ExactResumeHook(Hook):
    """Save and restore what a run's future depends on (see module).

    Priority ``LOW``: after the logger, before ``CheckpointHook``
    (``VERY_LOW``), whose save must see the gathered states.
    """

    priority = 'LOW'

    def __init__(self) -> None:
        self._resumed = False
        self._resume_state: Optional[Dict] = None
        self._resume_file: Optional[str] = None
        self._gathered: Optional[tuple] = None  # (step, [rank states])
        self._val_stash: Optional[Dict] = None
        self._val_gathered: Optional[List] = None
        self._deferred: List[_DeferredRemoval] = []

    # -- what one rank saves ------------------------------------------------
    def _local_state(self, runner) -> Dict:
        state = capture_rng_state()
        loop = getattr(runner, '_train_loop', None)
        # (runner.train_loop would build a loop that is still a config)
        dataloader = loop.dataloader if isinstance(loop, BaseLoop) else None
        state['sampler_seed'] = getattr(_sampler(dataloader), 'seed', None)
        state['worker_seed'] = _worker_seed(dataloader)
        return state

    @staticmethod
    def _due(runner, by_epoch: bool) -> bool:
        """Whether a ``CheckpointHook`` saves at this iteration/epoch end
        (its own test, which it evaluates right after this hook)."""
        for hook in runner.hooks:
            if not isinstance(hook, CheckpointHook) or hook.by_epoch != \
                    by_epoch:
                continue
            if by_epoch:
                if hook.every_n_epochs(runner, hook.interval,
                                       hook.save_begin) or (
                                           hook.save_last and
                                           hook.is_last_train_epoch(runner)):
                    return True
            elif hook.every_n_train_iters(runner, hook.interval,
                                          hook.save_begin) or (
                                              hook.save_last and
                                              hook.is_last_train_iter(runner)):
                return True
        return False

    def _gather_if_due(self, runner, by_epoch: bool) -> None:
        if get_world_size() > 1 and self._due(runner, by_epoch):
            self._gathered = ((runner.epoch, runner.iter),
                              all_gather_object(self._local_state(runner)))

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        self._gather_if_due(runner, by_epoch=False)

    def after_train_epoch(self, runner) -> None:
        self._gather_if_due(runner, by_epoch=True)

    def before_val(self, runner) -> None:
        # validation must not move the training generators
        if not isinstance(getattr(runner, '_train_loop', None), BaseLoop):
            return  # runner.val() alone
        self._val_stash = self._local_state(runner)
        if get_world_size() > 1:  # a best checkpoint may be saved
            self._val_gathered = all_gather_object(self._val_stash)

    def after_val(self, runner) -> None:
        self._flush_removals()
        if self._val_stash is not None:
            restore_rng_state(self._val_stash)
        self._val_stash = self._val_gathered = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        world = get_world_size()
        if self._val_stash is not None:  # e.g. a best checkpoint
            ranks = self._val_gathered or [self._val_stash]
        elif world == 1:
            ranks = [self._local_state(runner)]
        elif self._gathered is not None and \
                self._gathered[0] == (runner.epoch, runner.iter):
            ranks = self._gathered[1]
        else:  # saved outside CheckpointHook's schedule: rank 0 only
            ranks = [self._local_state(runner)] + [None] * (world - 1)
        checkpoint.setdefault('meta', {})[STATE_KEY] = dict(
            version=STATE_VERSION, world_size=world, ranks=ranks)

    # -- resume -------------------------------------------------------------
    def before_run(self, runner) -> None:
        if getattr(runner, '_resume', False) and \
                getattr(runner, '_load_from', None) is None:
            latest = find_latest_checkpoint(runner.work_dir)
            if latest is not None:  # else mmengine finds nothing either
                runner._load_from = latest

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not getattr(runner, '_resume', False):
            return  # load_from: weights only, a new run
        self._resumed = True
        self._resume_state = checkpoint.get('meta', {}).get(STATE_KEY)
        self._resume_file = getattr(runner, '_load_from', None)

    def _not_exact(self, reason: str) -> None:
        where = f'{self._resume_file}: ' if self._resume_file else ''
        print_log(f'resume from {where}{reason}; the continuation will not '
                  'be bit-exact', logger='current', level=logging.WARNING)

    def _own_state(self) -> Optional[Dict]:
        state, world = self._resume_state, get_world_size()
        if not isinstance(state, dict) or state.get('version') != \
                STATE_VERSION:
            self._not_exact('the checkpoint holds no random generator or '
                            'data loader state (saved without '
                            'ExactResumeHook)')
            return None
        if state['world_size'] != world:
            self._not_exact(f'the checkpoint was saved by '
                            f'{state["world_size"]} processes, this run has '
                            f'{world}')
            return None
        mine = state['ranks'][get_rank()]
        if mine is None:
            self._not_exact(f'the checkpoint holds no state of rank '
                            f'{get_rank()} (saved outside CheckpointHook)')
        return mine

    def before_train(self, runner) -> None:
        if not self._resumed:
            return
        mine = self._own_state()
        if mine is None:
            return
        loop = runner.train_loop
        dataloader = loop.dataloader
        restarted = self._restore_seeds(dataloader, mine)
        if isinstance(loop, IterBasedTrainLoop):
            if restarted:  # the old iterator drew with the wrong seeds
                inner = getattr(loop.dataloader_iterator, '_iterator', None)
                if hasattr(inner, '_shutdown_workers'):
                    inner._shutdown_workers()
                _stop_workers(dataloader)
                loop.dataloader_iterator = _InfiniteDataloaderIterator(
                    dataloader)
            loop.dataloader_iterator = _RestoreAfterReplay(
                loop, runner.iter, partial(self._restore, mine))
            return
        per_epoch = len(dataloader)
        if runner.iter != runner.epoch * per_epoch:
            self._not_exact(f'the checkpoint is from iteration {runner.iter}'
                            f', inside epoch {runner.epoch + 1} '
                            f'({per_epoch} iterations per epoch), which '
                            'mmengine restarts from its first batch')
        self._restore(mine)

    @staticmethod
    def _restore(state: Dict) -> None:
        for problem in restore_rng_state(state):
            print_log(f'resume: {problem}; the continuation will not be '
                      'bit-exact', logger='current', level=logging.WARNING)

    @staticmethod
    def _restore_seeds(dataloader, state: Dict) -> bool:
        """Set the sampler and worker seeds back to the saved ones; whether
        the data iterator has to be started again for them to apply."""
        changed = False
        sampler = _sampler(dataloader)
        seed = state.get('sampler_seed')
        if seed is not None and getattr(sampler, 'seed', seed) != seed:
            sampler.seed = seed
            if hasattr(sampler, '_indices_of_rank'):  # InfiniteSampler
                sampler.indices = sampler._indices_of_rank()
            changed = True
        seed = state.get('worker_seed')
        current = _worker_seed(dataloader)
        if seed is not None and current is not None and current != seed:
            _set_worker_seed(dataloader, seed)
            changed = True
        return changed

    # -- every epoch / iteration -------------------------------------------
    def before_train_epoch(self, runner) -> None:
        self._defer_checkpoint_removals(runner)
        self._flush_removals()
        loop = runner.train_loop
        if isinstance(loop, IterBasedTrainLoop):
            return
        dataloader = loop.dataloader
        if getattr(dataloader, 'num_workers', 0) > 0:
            seed = _worker_seed(dataloader)
            if seed is not None:
                dataloader.worker_init_fn = partial(
                    epoch_worker_init_fn,
                    num_workers=dataloader.num_workers,
                    rank=get_rank(),
                    seed=seed,
                    epoch=runner.epoch)
                _stop_workers(dataloader)

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        self._flush_removals()

    def after_train(self, runner) -> None:
        self._flush_removals()

    def _defer_checkpoint_removals(self, runner) -> None:
        # CheckpointHook sets its file backend in its before_train, which
        # runs after this hook's: wrap it at the first epoch start.
        for hook in runner.hooks:
            backend = getattr(hook, 'file_backend', None)
            if isinstance(hook, CheckpointHook) and backend is not None \
                    and not isinstance(backend, _DeferredRemoval):
                hook.file_backend = _DeferredRemoval(backend)
                self._deferred.append(hook.file_backend)

    def _flush_removals(self) -> None:
        for backend in self._deferred:
            backend.flush()


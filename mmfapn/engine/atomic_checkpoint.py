"""Checkpoints that are either complete or absent, and resume that finds them.

mmengine's local file backend writes a checkpoint with
``open(path, 'wb').write(data)``: a run killed (SIGTERM, SIGKILL, node
loss) while saving leaves a truncated ``iter_N.pth``.  mmfapn's checkpoint
hardening (:func:`install_atomic_checkpoints`, part of
:func:`~mmfapn.engine.hardening.install_runtime_hardening`) registers
:class:`AtomicLocalBackend` as mmengine's ``local`` backend
(through mmengine's own ``register_backend``): bytes go to a temporary file
in the same directory, are flushed and fsynced, then renamed over the
target with ``os.replace``, which is atomic on POSIX and Windows.  A reader
sees the old file or the new one, never half of one.  mmengine's
``CheckpointHook`` writes ``last_checkpoint`` only after the checkpoint is
saved, so it names a complete file.

:func:`find_latest_checkpoint` (used by ``tools/train.py --resume`` and, for
any tool, by :class:`~mmfapn.engine.exact_resume_hook.ExactResumeHook`)
does not trust ``last_checkpoint`` blindly.  ``CheckpointHook`` writes the
checkpoint, then ``last_checkpoint``: a run killed in between leaves a
complete checkpoint newer than the one recorded, and it is taken (a
checkpoint of the same kind, ``iter_``/``epoch_``, with a larger step,
written after the record; older files of another run in the same directory
are not).  When the record is empty (killed while writing it), names a
missing file (deleted by ``max_keep_ckpts``) or a truncated one (written by
another tool), the newest complete ``iter_*.pth`` / ``epoch_*.pth`` in the
work directory is taken instead, with a warning.
"""
import logging
import os
import os.path as osp
import re
import uuid
from pathlib import Path
from typing import List, Optional, Union

from mmengine.fileio.backends import LocalBackend, register_backend
from mmengine.logging import print_log

from .safe_checkpoint import checkpoint_is_complete

_CKPT_RE = re.compile(r'^(iter|epoch)_(\d+)\.pth$')


def atomic_write_bytes(data: bytes, filepath: Union[str, Path]) -> None:
    """Write ``data`` to ``filepath`` so that it is complete or untouched."""
    filepath = str(filepath)
    if osp.islink(filepath):  # keep write-through semantics for symlinks
        filepath = osp.realpath(filepath)
    directory = osp.dirname(osp.abspath(filepath))
    os.makedirs(directory, exist_ok=True)
    tmp = osp.join(directory, f'.{osp.basename(filepath)}.tmp-'
                   f'{os.getpid()}-{uuid.uuid4().hex[:8]}')
    try:
        with open(tmp, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    try:  # persist the rename itself (POSIX); not possible everywhere
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class AtomicLocalBackend(LocalBackend):
    """mmengine's ``LocalBackend`` whose writes are atomic (see module)."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        atomic_write_bytes(obj, filepath)

    def put_text(self,
                 obj: str,
                 filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
        atomic_write_bytes(obj.encode(encoding), filepath)


def install_atomic_checkpoints() -> None:
    """Make :class:`AtomicLocalBackend` mmengine's backend for local paths."""
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')


def list_checkpoints(work_dir: str) -> List[str]:
    """``iter_*.pth`` / ``epoch_*.pth`` in ``work_dir``, newest (largest
    step) first.  Temporary files of interrupted writes are not listed."""
    if not osp.isdir(work_dir):
        return []
    found = []
    for name in os.listdir(work_dir):
        m = _CKPT_RE.match(name)
        if m:
            found.append((int(m.group(2)), name))
    return [osp.join(work_dir, n) for _, n in sorted(found, reverse=True)]


def _newer_than_record(named: str, record: str) -> Optional[str]:
    """The newest complete checkpoint of ``named``'s kind in its directory
    with a larger step than ``named``, written after ``record`` was (a run
    killed between saving it and updating ``record``), or None."""
    m = _CKPT_RE.match(osp.basename(named))
    if m is None:
        return None
    kind, step = m.group(1), int(m.group(2))
    record_time = os.stat(record).st_mtime
    for path in list_checkpoints(osp.dirname(named)):
        other = _CKPT_RE.match(osp.basename(path))
        if other.group(1) != kind or int(other.group(2)) <= step:
            continue
        if os.stat(path).st_mtime > record_time and \
                checkpoint_is_complete(path):
            return path
    return None


def find_latest_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint to resume from: the newest complete one of the run
    that ``last_checkpoint`` records (see module), else the newest complete
    one in ``work_dir``, else None.
    """
    record = osp.join(work_dir, 'last_checkpoint')
    named = None
    if osp.isfile(record):
        with open(record) as f:
            named = f.read().strip() or None
    if named is not None:
        if not osp.isabs(named) and not osp.exists(named):
            named = osp.join(work_dir, named)
        if checkpoint_is_complete(named):
            newer = _newer_than_record(named, record)
            if newer is not None:
                print_log(
                    f'last_checkpoint names {named!r}, but {newer} was '
                    'saved after it (run killed before the record was '
                    'updated); resuming from it',
                    logger='current',
                    level=logging.WARNING)
                return newer
            return named
    for path in list_checkpoints(work_dir):
        if checkpoint_is_complete(path):
            if named is not None or osp.isfile(record):
                print_log(
                    f'last_checkpoint names {named!r}, which is missing or '
                    f'incomplete; resuming from {path} instead',
                    logger='current',
                    level=logging.WARNING)
            return path
        print_log(f'skipping incomplete checkpoint {path}', logger='current',
                  level=logging.WARNING)
    return None

"""Atomic checkpoint writes and the choice of checkpoint to resume from."""
import os
import signal
import subprocess
import sys

import torch
from mmengine.fileio import get_file_backend
from mmengine.runner.checkpoint import save_checkpoint

from mmfapn.engine import (AtomicLocalBackend, find_latest_checkpoint,
                           install_runtime_hardening, list_checkpoints)

install_runtime_hardening()  # the atomic backend

# Save a checkpoint through mmengine, but die by SIGKILL at the moment the
# new bytes are on disk and not yet renamed over the target.
_KILLED_SAVE = '''
import os, signal, sys
import torch
from mmengine.runner.checkpoint import save_checkpoint
from mmfapn.engine import install_runtime_hardening
install_runtime_hardening()

def die(fd):
    os.kill(os.getpid(), signal.SIGKILL)

os.fsync = die
save_checkpoint({'state_dict': {'w': torch.full((100000,), 2.0)}},
                sys.argv[1])
'''


def _save(path, value):
    save_checkpoint({'state_dict': {'w': torch.full((100000, ), value)}},
                    str(path))


def test_mmengine_local_backend_is_atomic(tmp_path):
    backend = get_file_backend(str(tmp_path / 'x'))
    assert isinstance(backend, AtomicLocalBackend)
    backend.put(b'abc', tmp_path / 'sub' / 'f.bin')
    assert (tmp_path / 'sub' / 'f.bin').read_bytes() == b'abc'
    backend.put_text('héllo', tmp_path / 't.txt')
    assert (tmp_path / 't.txt').read_text(encoding='utf-8') == 'héllo'
    # writes through a symlink, as LocalBackend does
    (tmp_path / 'real.bin').write_bytes(b'old')
    os.symlink(tmp_path / 'real.bin', tmp_path / 'link.bin')
    backend.put(b'new', tmp_path / 'link.bin')
    assert os.path.islink(tmp_path / 'link.bin')
    assert (tmp_path / 'real.bin').read_bytes() == b'new'
    assert sorted(os.listdir(tmp_path)) == [
        'link.bin', 'real.bin', 'sub', 't.txt'
    ]  # no temporary file left


def test_save_killed_before_rename_keeps_the_old_checkpoint(tmp_path):
    ckpt = tmp_path / 'iter_2.pth'
    _save(ckpt, 1.0)
    proc = subprocess.run([sys.executable, '-c', _KILLED_SAVE,
                           str(ckpt)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    # the target still holds the old, complete checkpoint
    w = torch.load(ckpt)['state_dict']['w']
    assert torch.equal(w, torch.full((100000, ), 1.0))
    leftovers = [f for f in os.listdir(tmp_path) if f != 'iter_2.pth']
    assert len(leftovers) == 1 and leftovers[0].startswith('.iter_2.pth.tmp-')
    assert list_checkpoints(str(tmp_path)) == [str(ckpt)]


def test_find_latest_checkpoint(tmp_path):
    work = str(tmp_path)
    assert find_latest_checkpoint(str(tmp_path / 'absent')) is None
    assert find_latest_checkpoint(work) is None
    for step in (2, 9, 10):
        _save(tmp_path / f'iter_{step}.pth', float(step))
    assert list_checkpoints(work) == [
        str(tmp_path / f'iter_{s}.pth') for s in (10, 9, 2)
    ]
    # no last_checkpoint (killed between the save and its record)
    assert find_latest_checkpoint(work) == str(tmp_path / 'iter_10.pth')
    record = tmp_path / 'last_checkpoint'
    record.write_text(str(tmp_path / 'iter_9.pth'))
    assert find_latest_checkpoint(work) == str(tmp_path / 'iter_9.pth')
    record.write_text('')  # truncated record
    assert find_latest_checkpoint(work) == str(tmp_path / 'iter_10.pth')
    # the newest file is half written: the one before it is taken
    data = (tmp_path / 'iter_10.pth').read_bytes()
    (tmp_path / 'iter_10.pth').write_bytes(data[:len(data) // 2])
    record.write_text(str(tmp_path / 'iter_10.pth'))
    assert find_latest_checkpoint(work) == str(tmp_path / 'iter_9.pth')
    # the record names a file deleted by max_keep_ckpts
    record.write_text(str(tmp_path / 'iter_11.pth'))
    assert find_latest_checkpoint(work) == str(tmp_path / 'iter_9.pth')

"""Safe loading of Runner checkpoints with torch.load(weights_only=True)."""
import copy
import os
import pickle

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint, load_checkpoint

from mmfapn.engine import (IncompleteCheckpointError, UnsafeCheckpointError,
                           allowlisted_names, install_runtime_hardening,
                           load_state_dict_only)

install_runtime_hardening()  # the allowlist and the loader

# What real Runner checkpoints of this plugin contain beyond torch's own
# weights-only allowlist (checked below on files the Runner wrote).
RUNNER_GLOBALS = {
    'builtins.getattr',
    'mmengine.logging.history_buffer.HistoryBuffer',
    'numpy.core.multiarray._reconstruct',
    'numpy.core.multiarray.scalar',
    'numpy.dtype',
    'numpy.ndarray',
}
ALLOWLIST = RUNNER_GLOBALS | {
    'numpy._core.multiarray._reconstruct',  # numpy 2 spelling
    'numpy._core.multiarray.scalar',
    'numpy.dtypes.Float64DType',
    'numpy.dtypes.Int64DType',
    'numpy.dtypes.Float32DType',
    'numpy.dtypes.Int32DType',
}


def _globals_beyond_torch_defaults(path: str) -> set:
    """Globals of ``path`` that torch's default allowlist does not cover
    (mmfapn's additions are taken out for the query, then restored)."""
    saved = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    try:
        return set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    finally:
        torch.serialization.add_safe_globals(saved)


@pytest.fixture(scope='module')
def runner_checkpoints(tiny_fapn_seg_config, tmp_path_factory):
    """Checkpoints written by mmengine's Runner: one iteration with
    validation and ``save_best`` (a numpy ``best_score`` in the meta)."""
    cfg = Config.fromfile(tiny_fapn_seg_config)
    cfg.work_dir = str(tmp_path_factory.mktemp('runner_ckpt'))
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=1,
                         val_interval=1)
    cfg.val_dataloader = copy.deepcopy(cfg.test_dataloader)
    cfg.val_cfg = dict(type='ValLoop')
    cfg.val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
    cfg.default_hooks.checkpoint.save_best = 'mIoU'
    Runner.from_cfg(cfg).train()
    files = sorted(
        os.path.join(cfg.work_dir, f) for f in os.listdir(cfg.work_dir)
        if f.endswith('.pth'))
    assert [os.path.basename(f) for f in files] == [
        'best_mIoU_iter_1.pth', 'iter_1.pth'
    ]
    return files


@pytest.mark.slow
def test_allowlist_is_exactly_what_the_runner_writes(runner_checkpoints):
    assert allowlisted_names() == ALLOWLIST
    for path in runner_checkpoints:
        assert _globals_beyond_torch_defaults(path) == RUNNER_GLOBALS
        # torch >= 2.6 default (weights_only=True) and mmengine's loader
        ckpt = torch.load(path)
        assert ckpt['meta']['iter'] == 1
        ckpt = _load_checkpoint(path)
        hub = ckpt['message_hub']
        assert hub['log_scalars']['train/loss'].current() > 0
        assert isinstance(hub['runtime_info']['eta'], np.floating)
    best = torch.load(runner_checkpoints[0])
    assert isinstance(best['message_hub']['runtime_info']['best_score'],
                      np.float64)


class _ShellPayload:
    """Unpickling this runs a shell command (what a malicious file does)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command, )


class _FileWriteGadget:
    """Unpickling this writes a file via ``getattr(np.ndarray, 'tofile')``:
    it uses the name ``builtins.getattr``, which a Runner checkpoint also
    uses, so only mmfapn's restricted getattr stops it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return np.ndarray.tofile, (np.arange(3), self.path)


def _save_with(payload, path):
    torch.save({'state_dict': {'w': torch.zeros(2)}, 'meta': payload}, path)


def test_code_execution_checkpoint_is_refused(tmp_path, monkeypatch):
    marker = tmp_path / 'pwned'
    evil = str(tmp_path / 'evil.pth')
    _save_with(_ShellPayload(f'touch {marker}'), evil)

    # The payload is real: an unrestricted load runs the command.
    control = tmp_path / 'control'
    _save_with(_ShellPayload(f'touch {control}'), str(tmp_path / 'c.pth'))
    torch.load(str(tmp_path / 'c.pth'), weights_only=False)
    assert control.exists()

    # Even with the env var that would turn weights_only off for mmengine's
    # bare torch.load: mmfapn's loader passes weights_only=True explicitly.
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    with pytest.raises(UnsafeCheckpointError) as info:
        _load_checkpoint(evil)
    msg = str(info.value)
    assert '\n' not in msg
    assert f"refusing to load checkpoint '{evil}'" in msg
    assert f'{os.system.__module__}.system' in msg  # posix.system
    assert 'could run code' in msg
    with pytest.raises(UnsafeCheckpointError, match='refusing to load'):
        load_checkpoint(torch.nn.Linear(2, 2), evil)  # Runner's load_from
    with pytest.raises(UnsafeCheckpointError):
        load_state_dict_only(evil)
    assert not marker.exists()


def test_getattr_gadget_is_refused(tmp_path):
    target = tmp_path / 'written'
    evil = str(tmp_path / 'gadget.pth')
    _save_with(_FileWriteGadget(str(target)), evil)
    control = tmp_path / 'control'
    pickle.loads(pickle.dumps(_FileWriteGadget(str(control))))
    assert control.exists()
    assert 'builtins.getattr' in _globals_beyond_torch_defaults(evil)

    with pytest.raises(UnsafeCheckpointError) as info:
        _load_checkpoint(evil)
    msg = str(info.value)
    assert "getattr(<class 'numpy.ndarray'>, 'tofile')" in msg
    assert 'only HistoryBuffer.{min,max,current,mean} is allowed' in msg
    assert not target.exists()


def test_missing_and_truncated_checkpoints(tmp_path):
    missing = str(tmp_path / 'nope.pth')
    with pytest.raises(FileNotFoundError,
                       match=f"checkpoint file not found: '{missing}'"):
        _load_checkpoint(missing)
    whole = tmp_path / 'whole.pth'
    torch.save({'state_dict': {'w': torch.rand(1000)}}, whole)
    assert _load_checkpoint(str(whole))['state_dict']['w'].shape == (1000, )
    data = whole.read_bytes()
    cut = tmp_path / 'cut.pth'
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(IncompleteCheckpointError,
                       match=f"checkpoint '{cut}' is incomplete"):
        _load_checkpoint(str(cut))


@pytest.mark.slow
def test_load_state_dict_only(tmp_path, runner_checkpoints):
    weights = load_state_dict_only(runner_checkpoints[1])
    full = torch.load(runner_checkpoints[1])
    assert set(weights) == set(full['state_dict'])
    assert any(k.startswith('neck.align_modules.') for k in weights)
    for k, v in weights.items():
        assert torch.equal(v, full['state_dict'][k])
    flat = tmp_path / 'flat.pth'
    torch.save({'a': torch.ones(1), 'b': 3}, flat)
    with pytest.raises(TypeError, match=r"not tensors under string keys: "
                       r"\['b'\]"):
        load_state_dict_only(str(flat))

"""mmfapn's runner keeps glibc's freed memory for reuse on CPU
(``env_cfg.cpu_malloc``, ``$MMFAPN_CPU_MALLOC``).

Runners that apply the setting are built in fresh interpreters (it is
process-wide and cannot be undone; the suite itself runs with
``MMFAPN_CPU_MALLOC=default``, see conftest.py).
"""
import json
import os
import platform
import subprocess
import sys

import pytest

from mmfapn.engine.exact_resume_runner import (ENV_CPU_MALLOC,
                                               configure_cpu_malloc,
                                               cpu_malloc_choice)

_RUNNER = r'''
import json, sys, tempfile
import torch
from mmengine.model import BaseModel
from mmfapn.engine import DataCheckedRunner
from mmfapn.utils.malloc import freed_memory_kept


class Toy(BaseModel):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(2, 2)

    def forward(self, *args, **kwargs):
        return {}


runner = DataCheckedRunner(model=Toy(), work_dir=tempfile.mkdtemp(),
                           env_cfg=json.loads(sys.argv[1]))
with open(runner.logger.log_file) as f:
    log = f.read()
print(json.dumps(dict(kept=freed_memory_kept(), log=log)))
'''

glibc_only = pytest.mark.skipif(
    platform.system() != 'Linux' or platform.libc_ver()[0] != 'glibc',
    reason='glibc malloc only')


def _runner(env_cfg, **env_extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith('MALLOC_') and k not in (
               'GLIBC_TUNABLES', ENV_CPU_MALLOC)}
    env.update(env_extra)
    out = subprocess.run(
        [sys.executable, '-c', _RUNNER, json.dumps(env_cfg)], env=env,
        capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@glibc_only
def test_cpu_runner_keeps_freed_memory_by_default():
    result = _runner({})
    assert result['kept'] is True
    assert "cpu_malloc='reuse': glibc malloc keeps freed memory" in \
        result['log']


@glibc_only
@pytest.mark.parametrize('env_cfg,env', [
    ({'cpu_malloc': 'default'}, {}),
    ({}, {ENV_CPU_MALLOC: 'default'}),
    ({'cpu_malloc': 'default'}, {ENV_CPU_MALLOC: 'reuse'}),  # config wins
])
def test_default_leaves_malloc_alone(env_cfg, env):
    result = _runner(env_cfg, **env)
    assert result['kept'] is False
    assert "cpu_malloc='default': glibc malloc left at its settings" in \
        result['log']


@glibc_only
def test_user_malloc_options_win():
    result = _runner({}, MALLOC_ARENA_MAX='2')
    assert result['kept'] is False
    assert "cpu_malloc='reuse' not applied: glibc malloc options set in " \
        'the environment (MALLOC_ARENA_MAX)' in result['log']


def test_gpu_runs_are_left_alone():
    # returns before touching malloc: safe in this process
    assert configure_cpu_malloc({}, 'cuda') is None
    assert configure_cpu_malloc({'cpu_malloc': 'reuse'}, 'cuda') is None


def test_bad_choice_is_one_clear_error(monkeypatch):
    with pytest.raises(ValueError) as e:
        cpu_malloc_choice({'cpu_malloc': 'yes'})
    assert str(e.value) == ("env_cfg.cpu_malloc must be one of ('reuse', "
                            "'default'), got 'yes'")
    monkeypatch.setenv(ENV_CPU_MALLOC, 'jemalloc')
    with pytest.raises(ValueError, match=f'environment variable '
                       f"{ENV_CPU_MALLOC} must be one of .* got 'jemalloc'"):
        configure_cpu_malloc({}, 'cuda')

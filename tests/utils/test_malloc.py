"""glibc malloc kept from unmapping freed memory (``keep_freed_memory``).

Every case runs in a fresh interpreter: the setting is process-wide and
cannot be undone.  The behaviour is checked by page faults, not time: a
64 MiB tensor allocated, written, freed and allocated again faults its
pages again under glibc's defaults (a fresh ``mmap``) every time, and
not at all once freed memory is kept (after the first few allocations,
which may still grow the heap while small blocks settle into the freed
space).
"""
import json
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.system() != 'Linux' or platform.libc_ver()[0] != 'glibc',
    reason='glibc malloc only')

_FAULTS = r'''
import json, resource, sys
import torch
from mmfapn.utils.malloc import allocator, keep_freed_memory

def faults_of_last_allocations():
    counts = []
    for _ in range(8):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        x = torch.empty(16 << 20)  # 64 MiB of float32
        x.fill_(1.0)
        counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                      - before)
        del x
    return counts[-3:]

result = {}
if sys.argv[1] == 'keep':
    result['why_not'] = keep_freed_memory()
    result['again'] = keep_freed_memory()
result['faults'] = faults_of_last_allocations()
result['allocator'] = allocator()
print(json.dumps(result))
'''


def _run(mode, **env_extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith('MALLOC_') and k != 'GLIBC_TUNABLES'}
    env.update(env_extra)
    out = subprocess.run([sys.executable, '-c', _FAULTS, mode], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_freed_memory_is_reused_without_page_faults():
    default = _run('default')
    kept = _run('keep')
    # 64 MiB = 16384 pages of 4 KiB: glibc maps them afresh each time
    assert min(default['faults']) > 8000, default
    assert default['allocator']['freed_memory_kept'] is False
    assert kept['why_not'] is None and kept['again'] is None  # idempotent
    assert max(kept['faults']) < 100, kept
    assert kept['allocator']['freed_memory_kept'] is True
    assert kept['allocator']['name'].startswith('glibc malloc')


def test_user_glibc_options_are_left_alone():
    result = _run('keep', MALLOC_ARENA_MAX='2')
    assert result['why_not'] == ('glibc malloc options set in the '
                                 'environment (MALLOC_ARENA_MAX): left as '
                                 'they are')
    assert result['allocator']['freed_memory_kept'] is False
    assert result['allocator']['malloc_settings'] == {'MALLOC_ARENA_MAX': '2'}
    assert min(result['faults']) > 8000  # glibc's defaults still apply


def test_other_glibc_tunables_do_not_count():
    result = _run('keep', GLIBC_TUNABLES='glibc.rtld.optional_static_tls=1024')
    assert result['why_not'] is None
    assert max(result['faults']) < 100
    result = _run('keep', GLIBC_TUNABLES='glibc.malloc.arena_max=2')
    assert result['why_not'].startswith('glibc malloc options set in the '
                                        'environment (GLIBC_TUNABLES)')

"""Which malloc serves the process, and glibc's setting for CPU training.

glibc's malloc serves every block above its mmap threshold (at most 32 MiB
on 64-bit) with a fresh ``mmap`` and unmaps it on free, and trims the top
of its heap when much of it is free.  A CPU training step allocates many
tensors that large (a 256-channel map at stride 4 of a 512x1024 image is
exactly 32 MiB) and frees them before the next step, so every step the
kernel page-faults and zeroes them again on first touch.
:func:`keep_freed_memory` turns both off (``M_MMAP_MAX = 0``,
``M_TRIM_THRESHOLD = -1``): freed blocks stay in the heap and the next
step reuses them.  The price is that the process's resident size stays
at its peak instead of shrinking between steps, as with a GPU's caching
allocator.
What it changes was measured on FaPN and FPN: docs/speed.md.
"""
import ctypes
import os
import os.path as osp
import platform
from typing import Dict, Optional

# mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
# mallopt(3): a trim threshold of -1 disables trimming completely
TRIM_THRESHOLD = -1
_OTHER_MALLOCS = ('jemalloc', 'tcmalloc', 'mimalloc')

_kept = False


def allocator() -> Dict[str, object]:
    """Which malloc serves this process (a preloaded or mapped jemalloc,
    tcmalloc or mimalloc, else the C library's), and the glibc malloc
    settings in the environment."""
    preload = os.environ.get('LD_PRELOAD', '')
    mapped = set()
    try:
        with open('/proc/self/maps') as f:
            for line in f:
                fields = line.split()
                base = osp.basename(fields[-1]) if len(fields) >= 6 else ''
                mapped.update(lib for lib in _OTHER_MALLOCS if lib in base)
    except OSError:
        pass
    name = next((lib for lib in _OTHER_MALLOCS
                 if lib in mapped or lib in preload), None)
    libc, version = platform.libc_ver()
    return dict(
        name=name or (f'glibc malloc ({libc} {version})'
                      if libc else 'system malloc'),
        ld_preload=preload or None,
        mapped_malloc_libraries=sorted(mapped),
        malloc_settings=glibc_settings_in_environment(),
        freed_memory_kept=_kept)


def glibc_settings_in_environment() -> Dict[str, str]:
    """``MALLOC_*`` variables and ``GLIBC_TUNABLES`` set for this process."""
    return {
        k: v
        for k, v in os.environ.items()
        if k.startswith('MALLOC_') or k == 'GLIBC_TUNABLES'
    }


def keep_freed_memory() -> Optional[str]:
    """Tell glibc's malloc to keep freed memory for reuse (no ``mmap``, no
    trimming of the heap); idempotent.

    Does nothing where glibc's malloc does not serve the process or where
    the environment already sets glibc malloc options (``MALLOC_*``, or
    ``glibc.malloc.*`` in ``GLIBC_TUNABLES``: the user's choice stands).
    Returns None when the setting is in effect (now or from an earlier
    call), else why it was not applied.
    """
    global _kept
    if _kept:
        return None
    served_by = allocator()
    if not str(served_by['name']).startswith('glibc'):
        return f"malloc is {served_by['name']}, not glibc's: left as it is"
    user = {
        k: v
        for k, v in served_by['malloc_settings'].items()
        if k != 'GLIBC_TUNABLES' or 'glibc.malloc.' in v
    }
    if user:
        names = ', '.join(sorted(user))
        return f'glibc malloc options set in the environment ({names}): ' \
               'left as they are'
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return 'mallopt not found: glibc malloc left as it is'
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    if not (mallopt(M_MMAP_MAX, 0) and mallopt(M_TRIM_THRESHOLD,
                                                TRIM_THRESHOLD)):
        return 'mallopt refused the settings: glibc malloc left as it is'
    _kept = True
    return None


def freed_memory_kept() -> bool:
    """Whether :func:`keep_freed_memory` is in effect in this process."""
    return _kept

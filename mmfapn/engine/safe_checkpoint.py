"""Load mmengine Runner checkpoints with ``torch.load(weights_only=True)``.

Since torch 2.6, ``torch.load`` only unpickles tensors, containers and
numbers unless told otherwise.  mmengine 0.10.7 calls it without the
argument, and a checkpoint saved by its ``Runner`` holds a few more types,
so ``--resume`` and ``load_from`` of a full checkpoint fail.  The usual
workaround (``weights_only=False`` or ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``)
lets a checkpoint file run arbitrary code.  Instead, mmfapn's checkpoint
hardening (:func:`install_safe_checkpoint_loading`, part of
:func:`~mmfapn.engine.hardening.install_runtime_hardening`) allowlists
exactly the globals that a Runner checkpoint of this plugin
contains, as listed by ``torch.serialization.get_unsafe_globals_in_checkpoint``
on real checkpoints (IterBasedTrainLoop, validation, ``save_best``):

======================================  =====================================
global                                   why it is in a Runner checkpoint
======================================  =====================================
``mmengine...HistoryBuffer``             ``message_hub.log_scalars`` values
``numpy.ndarray``, ``numpy.dtype``,      the buffers' float64/int64 history
``numpy.core.multiarray._reconstruct``   arrays
``numpy.core.multiarray.scalar``         numpy scalars in ``runtime_info``
                                         (``eta``, ``best_score``)
``builtins.getattr``                     ``HistoryBuffer.__getstate__`` saves
                                         its statistics methods as
                                         ``getattr(HistoryBuffer, 'mean')``
======================================  =====================================

plus the dtype classes ``Float64DType``, ``Int64DType`` (seen in the files)
and ``Float32DType``, ``Int32DType`` (what metric code returns as numpy
scalars): the unpickler checks the *type* of a rebuilt dtype, and numeric
dtypes carry no code.  Object, string and void dtypes are not allowed.
``builtins.getattr`` is not the builtin: the name is bound to
:func:`history_buffer_getattr`, which resolves only the four statistics
methods on ``HistoryBuffer`` and refuses everything else (a real
``getattr`` would let a file walk from an allowed object to any attribute).
The numpy names are also registered under their numpy 2 spelling
(``numpy._core.multiarray``) so checkpoints written under either numpy load.
The resume state that :class:`~mmfapn.engine.ExactResumeHook` adds (random
generator states, seeds) is stored as tuples, ints, floats, strings and
``uint8`` tensors and needs no entry here.

Local checkpoint paths (mmengine's default ``CheckpointLoader`` scheme) are
loaded by :func:`load_local_checkpoint`, which passes ``weights_only=True``
explicitly (``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` cannot override an explicit
argument) and turns torch's long message into one line:
:class:`UnsafeCheckpointError` naming the offending globals, or a clear
error for a missing or truncated file.
"""
import importlib
import os.path as osp
import pickle
import zipfile
from collections.abc import Mapping
from typing import Callable, Dict, List, Optional, Set, Tuple, Union

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

_SafeGlobal = Union[Callable, Tuple[Callable, str]]

# HistoryBuffer's default statistics (mmengine's _set_default_statistics).
HISTORY_BUFFER_STATISTICS = ('min', 'max', 'current', 'mean')

# numpy dtypes a Runner checkpoint may hold (see module docstring).
NUMPY_DTYPES = ('float64', 'int64', 'float32', 'int32')

_ZIP_MAGIC = b'PK\x03\x04'


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint references globals outside mmfapn's allowlist."""


class IncompleteCheckpointError(RuntimeError):
    """A checkpoint file ends early (e.g. a write that was killed)."""


def history_buffer_getattr(obj, name: str):
    """The only ``getattr`` a Runner checkpoint needs.

    ``HistoryBuffer.__getstate__`` stores ``{'mean': HistoryBuffer.mean,
    ...}``; protocol-2 pickles write each method as
    ``getattr(HistoryBuffer, 'mean')``.  Anything else is refused.
    """
    if obj is HistoryBuffer and name in HISTORY_BUFFER_STATISTICS:
        return getattr(HistoryBuffer, name)
    raise UnsafeCheckpointError(
        f'checkpoint asks for getattr({obj!r}, {name!r}); only '
        f'HistoryBuffer.{{{",".join(HISTORY_BUFFER_STATISTICS)}}} is allowed')


def _numpy_multiarray_names(attr: str) -> List[Tuple[Callable, str]]:
    """``attr`` of numpy's multiarray module under both module spellings
    (numpy 1.x pickles ``numpy.core``, numpy 2.x ``numpy._core``)."""
    obj = None
    for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        try:
            obj = getattr(importlib.import_module(module), attr)
            break
        except (ImportError, AttributeError):
            continue
    if obj is None:  # pragma: no cover - every numpy has one of the two
        raise ImportError(f'numpy has no multiarray.{attr}')
    return [(obj, f'numpy.core.multiarray.{attr}'),
            (obj, f'numpy._core.multiarray.{attr}')]


def runner_checkpoint_safe_globals() -> List[_SafeGlobal]:
    """The allowlist registered by :func:`register_safe_globals`."""
    safe: List[_SafeGlobal] = [
        (HistoryBuffer,
         'mmengine.logging.history_buffer.HistoryBuffer'),
        (history_buffer_getattr, 'builtins.getattr'),
        (np.ndarray, 'numpy.ndarray'),
        (np.dtype, 'numpy.dtype'),
    ]
    safe += _numpy_multiarray_names('_reconstruct')
    safe += _numpy_multiarray_names('scalar')
    # Rebuilt dtypes are checked by type (BUILD), not by name.
    safe += [type(np.dtype(name)) for name in NUMPY_DTYPES]
    return safe


def allowlisted_names() -> Set[str]:
    """Global names (as in a pickle) that the allowlist accepts."""
    names = set()
    for item in runner_checkpoint_safe_globals():
        if isinstance(item, tuple):
            names.add(item[1])
        else:
            names.add(f'{item.__module__}.{item.__qualname__}')
    return names


def register_safe_globals() -> None:
    """Allowlist the Runner checkpoint types in ``torch.serialization``.

    Idempotent; part of the checkpoint hardening, and called by
    :func:`load_local_checkpoint` itself.
    """
    torch.serialization.add_safe_globals(runner_checkpoint_safe_globals())


def checkpoint_is_complete(filename: str) -> bool:
    """Whether ``filename`` is a whole checkpoint file.

    torch's zip format ends with the zip central directory: a write that was
    killed leaves a file that starts like a zip but has none.  Files in
    torch's legacy (non-zip) format are taken as complete.
    """
    try:
        with open(filename, 'rb') as f:
            magic = f.read(4)
    except OSError:
        return False
    if magic != _ZIP_MAGIC:
        return len(magic) > 0
    try:
        with zipfile.ZipFile(filename) as z:
            return any(n.endswith('data.pkl') for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _unsafe_globals(filename: str) -> List[str]:
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(filename)
    except Exception:  # unreadable pickle: report what torch said instead
        return []
    return sorted(set(found) - allowlisted_names())


def load_local_checkpoint(filename: str,
                          map_location: Optional[Union[str, Callable]] = None
                          ) -> dict:
    """mmengine's local-file checkpoint loader, made safe and explicit.

    Raises:
        FileNotFoundError: the file does not exist.
        IncompleteCheckpointError: the file is truncated.
        UnsafeCheckpointError: the file needs globals outside the allowlist
            (loading it could run code); nothing from it is executed.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint file not found: {filename!r}')
    if not checkpoint_is_complete(filename):
        raise IncompleteCheckpointError(
            f'checkpoint {filename!r} is incomplete (truncated write, e.g. '
            'a run killed while saving); resume from an earlier one')
    register_safe_globals()
    try:
        return torch.load(
            filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise UnsafeCheckpointError(
            f'refusing to load checkpoint {filename!r}: '
            f'{_why_refused(filename, e)}; loading it could run code. If you '
            'trust its source, extract its state dict once in an isolated '
            'environment (see docs/reliability.md, "Checkpoint safety")'
        ) from None


def _why_refused(filename: str, error: Exception) -> str:
    unsafe = _unsafe_globals(filename)
    if unsafe:
        return (f'it references {", ".join(unsafe)}, outside the allowlist '
                'of mmengine checkpoint types')
    # e.g. a disallowed getattr: torch wraps our message in its own text
    for line in str(error).splitlines():
        if 'getattr(' in line:
            return line.strip().split('WeightsUnpickler error: ')[-1]
    return 'weights-only unpickling failed: ' + \
        str(error).strip().splitlines()[-1]


def load_state_dict_only(filename: str,
                         map_location: Optional[Union[str, Callable]] = 'cpu'
                         ) -> Dict[str, torch.Tensor]:
    """Weights of an untrusted checkpoint, nothing else.

    ``torch.load(weights_only=True)`` with torch's allowlist plus mmfapn's
    (numeric numpy data and mmengine's log buffers, none of which can run
    code), then only the tensor mapping is returned: the ``state_dict``
    entry, or the file itself if it is a flat mapping.  Anything that is not
    a tensor under a string key is refused, so no object from the file
    reaches the caller.
    """
    obj = load_local_checkpoint(filename, map_location=map_location)
    if isinstance(obj, Mapping) and isinstance(obj.get('state_dict'),
                                               Mapping):
        obj = obj['state_dict']
    if not isinstance(obj, Mapping):
        raise TypeError(f'{filename!r} holds a {type(obj).__name__}, not a '
                        'state dict')
    bad = [k for k, v in obj.items()
           if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise TypeError(f'{filename!r}: entries that are not tensors under '
                        f'string keys: {bad[:5]!r}')
    return dict(obj)


def install_safe_checkpoint_loading() -> None:
    """Register the allowlist and make :func:`load_local_checkpoint`
    mmengine's loader for local paths (its ``CheckpointLoader`` scheme
    ``''``; URL schemes keep mmengine's loaders, whose ``torch.load`` also
    sees the allowlist)."""
    register_safe_globals()
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_local_checkpoint, force=True)

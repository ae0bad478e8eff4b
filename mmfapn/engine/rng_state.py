"""The random generator state of one process, as checkpoint-safe data.

:func:`capture_rng_state` returns the state of Python's ``random``,
NumPy's global generator, torch's CPU generator and, where CUDA has been
initialised in this process, the generator of every CUDA device.  Only
tuples, ints, floats, strings, ``None`` and ``torch.uint8`` tensors are
used (NumPy's ``uint32`` key becomes a tuple of ints), so a checkpoint that
holds the state loads with ``torch.load(weights_only=True)`` and needs no
entry in mmfapn's allowlist of checkpoint types.
"""
import random
from typing import Dict, List

import numpy as np
import torch


def capture_rng_state() -> Dict:
    """This process's generator states (see module docstring)."""
    name, key, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    cuda: List[torch.Tensor] = []
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        cuda = [
            torch.cuda.get_rng_state(i)
            for i in range(torch.cuda.device_count())
        ]
    return dict(
        python=random.getstate(),
        numpy=(str(name), tuple(int(k) for k in key), int(pos),
               int(has_gauss), float(gauss)),
        torch=torch.get_rng_state(),
        cuda=cuda)


def restore_rng_state(state: Dict) -> List[str]:
    """Set the generators to ``state`` (from :func:`capture_rng_state`).

    Returns:
        list[str]: what could not be restored (empty when all was), e.g.
        CUDA states saved for more devices than this process sees.
    """
    problems = []
    random.setstate(state['python'])
    name, key, pos, has_gauss, gauss = state['numpy']
    np.random.set_state(
        (name, np.asarray(key, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state['torch'])
    cuda = state.get('cuda') or []
    if cuda:
        available = torch.cuda.device_count() if torch.cuda.is_available() \
            else 0
        if available < len(cuda):
            problems.append(f'CUDA generator states of {len(cuda)} devices '
                            f'saved, {available} visible')
        for i, s in enumerate(cuda[:available]):
            torch.cuda.set_rng_state(s, i)
    return problems

"""mmengine's Runner with :class:`ExactResumeHook` always registered and
mmfapn's checkpoint hardening installed.

:class:`~mmfapn.engine.data_checked_runner.DataCheckedRunner`, the
``runner_type`` of every mmfapn config (``configs/_base_/mmfapn.py``),
derives from it, so the hook is present however a config sets
``custom_hooks`` (a list in a child config replaces its base's list) and
whichever tool builds the runner: mmfapn's ``tools/train.py``, mmdet's or
mmseg's own ``tools/train.py`` and ``mim train`` all build
``cfg.runner_type`` from ``RUNNERS``.

An exact resume needs checkpoints that are complete on disk and that load
with ``weights_only=True``, so building the runner also installs the
hardening (:func:`~mmfapn.engine.hardening.install_runtime_hardening`,
idempotent).  Loading the config normally did already (its
``custom_imports``); a config that replaced ``custom_imports`` or was built
in code still gets it here.

On CPU the runner also asks glibc's malloc to keep freed memory for reuse
(:func:`mmfapn.utils.malloc.keep_freed_memory`): a CPU training step
otherwise page-faults its large tensors afresh every step (what that
costs: docs/speed.md).  The choice is ``env_cfg.cpu_malloc``: ``'reuse'``
(the default) or ``'default'`` (glibc's own settings); without that key
the environment variable ``MMFAPN_CPU_MALLOC`` (same values) decides.
Runs on a GPU, and processes whose environment sets glibc malloc options
or preloads another malloc, are left alone.  The runner logs what it did.
"""
import os
from typing import Dict, Optional

from mmengine.device import get_device
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmfapn.utils.malloc import freed_memory_kept, keep_freed_memory
from .exact_resume_hook import ExactResumeHook
from .hardening import install_runtime_hardening

ENV_CPU_MALLOC = 'MMFAPN_CPU_MALLOC'
CPU_MALLOC_CHOICES = ('reuse', 'default')


def cpu_malloc_choice(env_cfg: Dict) -> str:
    """``env_cfg['cpu_malloc']``, else ``$MMFAPN_CPU_MALLOC``, else
    ``'reuse'``.

    Raises:
        ValueError: the value is not one of ``CPU_MALLOC_CHOICES``.
    """
    if env_cfg.get('cpu_malloc') is not None:
        value, source = env_cfg['cpu_malloc'], 'env_cfg.cpu_malloc'
    else:
        value = os.environ.get(ENV_CPU_MALLOC, '').strip() or 'reuse'
        source = f'environment variable {ENV_CPU_MALLOC}'
    if value not in CPU_MALLOC_CHOICES:
        raise ValueError(f'{source} must be one of {CPU_MALLOC_CHOICES}, '
                         f'got {value!r}')
    return value


def configure_cpu_malloc(env_cfg: Dict, device: str) -> Optional[str]:
    """Apply the ``cpu_malloc`` choice for a run on ``device``; returns the
    line to log (None: nothing to say, e.g. on a GPU)."""
    choice = cpu_malloc_choice(env_cfg)
    if device != 'cpu':
        return None
    if choice == 'default':
        if freed_memory_kept():  # mallopt's changes cannot be undone
            return ("cpu_malloc='default', but an earlier runner of this "
                    "process already set 'reuse', which stays")
        return "cpu_malloc='default': glibc malloc left at its settings"
    why_not = keep_freed_memory()
    if why_not is not None:
        return f"cpu_malloc='reuse' not applied: {why_not}"
    return ("cpu_malloc='reuse': glibc malloc keeps freed memory for reuse "
            "(M_MMAP_MAX=0, no trimming; resident memory stays at its "
            "peak); env_cfg.cpu_malloc='default' leaves it alone")


@RUNNERS.register_module()
class ExactResumeRunner(Runner):
    """mmengine's ``Runner``, plus :class:`ExactResumeHook` (unless the
    config's ``custom_hooks`` already has one), with mmfapn's checkpoint
    hardening installed before anything is built.  Registered in
    mmengine's root ``RUNNERS``, so it is found from the mmdet and mmseg
    scopes."""

    def __init__(self, *args, **kwargs) -> None:
        install_runtime_hardening()
        self._cpu_malloc_note: Optional[str] = None
        super().__init__(*args, **kwargs)
        if self._cpu_malloc_note:
            self.logger.info(self._cpu_malloc_note)

    def setup_env(self, env_cfg: Dict) -> None:
        """mmengine's, plus the ``cpu_malloc`` choice (module docstring)."""
        self._cpu_malloc_note = configure_cpu_malloc(env_cfg, get_device())
        super().setup_env(env_cfg)

    def register_hooks(self, default_hooks=None, custom_hooks=None) -> None:
        super().register_hooks(default_hooks, custom_hooks)
        if not any(isinstance(h, ExactResumeHook) for h in self._hooks):
            self.register_hook(ExactResumeHook())

"""Runtime helpers: safe checkpoint loading, atomic checkpoint writes,
exact resumption, distributed runs without CUDA, input checks, the command
lines of ``tools/train.py`` and ``tools/test.py``.

Importing this package registers ``CheckImage``, the DDP wrapper, the CPU
mixed-precision optimizer wrapper, ``ExactResumeHook``, ``ExactResumeRunner``
and ``DataCheckedRunner`` (registration only: configs select them) and
changes nothing else.  The checkpoint hardening, which replaces parts of
mmengine, is installed explicitly: by :func:`install_runtime_hardening`
(mmfapn's tools call it), by loading any mmfapn config (its
``custom_imports`` imports :mod:`mmfapn.engine.harden`) and by building its
runner (see :mod:`mmfapn.engine.hardening`).
"""
from .atomic_checkpoint import (AtomicLocalBackend, atomic_write_bytes,
                                find_latest_checkpoint,
                                install_atomic_checkpoints, list_checkpoints)
from .cpu_amp import CPUAmpOptimWrapper
from .data_checked_runner import DataCheckedRunner
from .distributed import (DeviceAgnosticDistributedDataParallel,
                          count_sync_batchnorm, setup_distributed)
from .exact_resume_hook import ExactResumeHook
from .exact_resume_runner import ExactResumeRunner
from .hardening import install_runtime_hardening, runtime_hardening_installed
from .input_checks import CheckImage, EmptyDatasetError, build_loop_checked
from .pretrained_weights import (PretrainedWeightsError,
                                 check_pretrained_weights,
                                 install_pretrained_weights_check,
                                 pretrained_references)
from .rng_state import capture_rng_state, restore_rng_state
from .run_config import (build_runner, check_checkpoint_references,
                         checkpoint_references, load_config)
from .safe_checkpoint import (IncompleteCheckpointError, UnsafeCheckpointError,
                              allowlisted_names, checkpoint_is_complete,
                              install_safe_checkpoint_loading,
                              load_local_checkpoint, load_state_dict_only,
                              register_safe_globals,
                              runner_checkpoint_safe_globals)

__all__ = [
    'UnsafeCheckpointError', 'IncompleteCheckpointError',
    'allowlisted_names', 'checkpoint_is_complete',
    'install_safe_checkpoint_loading', 'load_local_checkpoint',
    'load_state_dict_only', 'register_safe_globals',
    'runner_checkpoint_safe_globals', 'AtomicLocalBackend',
    'atomic_write_bytes', 'install_atomic_checkpoints', 'list_checkpoints',
    'find_latest_checkpoint', 'DeviceAgnosticDistributedDataParallel',
    'count_sync_batchnorm', 'setup_distributed', 'load_config',
    'checkpoint_references', 'check_checkpoint_references', 'build_runner',
    'CheckImage', 'EmptyDatasetError', 'build_loop_checked',
    'DataCheckedRunner', 'CPUAmpOptimWrapper', 'PretrainedWeightsError',
    'check_pretrained_weights', 'install_pretrained_weights_check',
    'pretrained_references', 'ExactResumeHook', 'ExactResumeRunner',
    'capture_rng_state', 'restore_rng_state', 'install_runtime_hardening',
    'runtime_hardening_installed'
]

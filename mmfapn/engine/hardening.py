"""One call that installs mmfapn's checkpoint hardening into mmengine.

``import mmfapn`` only registers modules.  The hardening replaces parts of
mmengine (and extends torch's weights-only allowlist) for the whole
process, so it is installed where it is needed, explicitly:

- by every mmfapn config: the shared fragment ``configs/_base_/mmfapn.py``
  lists :mod:`mmfapn.engine.harden` in ``custom_imports``, which mmengine's
  ``Config.fromfile`` imports while it loads the config (so ``mim
  train/test``, mmdet's and mmseg's own tools and inference APIs get it),
  and selects ``runner_type = 'DataCheckedRunner'``, whose construction
  installs it again (for a config that replaced ``custom_imports`` or was
  built without ``Config.fromfile``);
- by mmfapn's ``tools/train.py`` and ``tools/test.py``
  (:mod:`mmfapn.engine.cli`);
- in a script of your own, by :func:`install_runtime_hardening`.

What it replaces or extends, each part installed (and documented) by its
own module's ``install_*`` function:

- torch's weights-only allowlist (``add_safe_globals``) and mmengine's
  ``CheckpointLoader`` loader for local paths (scheme ``''``):
  :mod:`~mmfapn.engine.safe_checkpoint`;
- mmengine's file backend ``'local'`` (prefix ``''``), whose writes become
  atomic: :mod:`~mmfapn.engine.atomic_checkpoint`;
- mmengine's ``Runner._init_model_weights``, wrapped so that pretrained
  weights that cannot be loaded are named in one line:
  :mod:`~mmfapn.engine.pretrained_weights`.
"""
from .atomic_checkpoint import AtomicLocalBackend, install_atomic_checkpoints
from .pretrained_weights import install_pretrained_weights_check
from .safe_checkpoint import (install_safe_checkpoint_loading,
                              load_local_checkpoint,
                              runner_checkpoint_safe_globals)


def install_runtime_hardening() -> None:
    """Install mmfapn's checkpoint hardening into mmengine (see module):
    safe loading of Runner checkpoints (``weights_only=True`` with mmfapn's
    allowlist), atomic checkpoint writes, and one-line errors for
    pretrained weights that cannot be loaded.

    Idempotent: a second call changes nothing.  Configs of this repository
    and mmfapn's tools call it; call it in a script of your own that
    trains, tests or loads checkpoints without them::

        from mmfapn.engine import install_runtime_hardening
        install_runtime_hardening()
    """
    install_safe_checkpoint_loading()
    install_atomic_checkpoints()
    install_pretrained_weights_check()


def runtime_hardening_installed() -> bool:
    """Whether every part of :func:`install_runtime_hardening` is in place
    (e.g. to check it in a script that did not load an mmfapn config)."""
    import torch
    from mmengine.fileio.backends import registry_utils
    from mmengine.runner import Runner
    from mmengine.runner.checkpoint import CheckpointLoader

    allowlist = set(torch.serialization.get_safe_globals())
    return (CheckpointLoader._schemes.get('') is load_local_checkpoint
            and registry_utils.backends.get('local') is AtomicLocalBackend
            and registry_utils.prefix_to_backends.get('')
            is AtomicLocalBackend
            and getattr(Runner._init_model_weights,
                        '__mmfapn_pretrained_check__', False)
            and all(g in allowlist for g in runner_checkpoint_safe_globals()))

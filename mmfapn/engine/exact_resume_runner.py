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
"""
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from .exact_resume_hook import ExactResumeHook
from .hardening import install_runtime_hardening


@RUNNERS.register_module()
class ExactResumeRunner(Runner):
    """mmengine's ``Runner``, plus :class:`ExactResumeHook` (unless the
    config's ``custom_hooks`` already has one), with mmfapn's checkpoint
    hardening installed before anything is built.  Registered in
    mmengine's root ``RUNNERS``, so it is found from the mmdet and mmseg
    scopes."""

    def __init__(self, *args, **kwargs) -> None:
        install_runtime_hardening()
        super().__init__(*args, **kwargs)

    def register_hooks(self, default_hooks=None, custom_hooks=None) -> None:
        super().register_hooks(default_hooks, custom_hooks)
        if not any(isinstance(h, ExactResumeHook) for h in self._hooks):
            self.register_hook(ExactResumeHook())

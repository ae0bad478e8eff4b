"""mmengine's Runner with :class:`ExactResumeHook` always registered.

``configs/_base_/mmfapn.py`` sets ``runner_type = 'ExactResumeRunner'``
(the detection configs' ``DataCheckedRunner`` derives from it), so the hook
is present however a config sets ``custom_hooks`` (a list in a child config
replaces its base's list) and whichever tool builds the runner: mmfapn's
``tools/train.py``, mmdet's or mmseg's own ``tools/train.py`` and
``mim train`` all build ``cfg.runner_type`` from ``RUNNERS``.
"""
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from .exact_resume_hook import ExactResumeHook


@RUNNERS.register_module()
class ExactResumeRunner(Runner):
    """mmengine's ``Runner``, plus :class:`ExactResumeHook` (unless the
    config's ``custom_hooks`` already has one).  Registered in mmengine's
    root ``RUNNERS``, so it is found from the mmdet and mmseg scopes."""

    def register_hooks(self, default_hooks=None, custom_hooks=None) -> None:
        super().register_hooks(default_hooks, custom_hooks)
        if not any(isinstance(h, ExactResumeHook) for h in self._hooks):
            self.register_hook(ExactResumeHook())

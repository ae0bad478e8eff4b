# Shared by every mmfapn config: import the plugin so that its modules are
# registered in mmdet's and mmseg's registries before the model is built.
# (Fail loudly: a silently missing plugin would build nothing useful.)
custom_imports = dict(imports=['mmfapn'], allow_failed_imports=False)
# mmengine's Runner plus ExactResumeHook: a run resumed with --resume (after
# SIGKILL at any moment) continues the interrupted one bit for bit
# (docs/reliability.md).  A runner, not a custom hook: no stock base sets
# runner_type, while a config's own custom_hooks list would replace ours.
# The detection configs' DataCheckedRunner derives from it.
runner_type = 'ExactResumeRunner'

# Shared by every mmfapn config (mmdet and mmseg); model configs change
# models only.
#
# custom_imports, imported by mmengine while it loads the config (so mim
# train/test and mmdet's and mmseg's own tools and inference APIs get both):
# `mmfapn` registers the plugin's modules in mmdet's and mmseg's registries;
# `mmfapn.engine.harden` installs the checkpoint hardening (safe loading,
# atomic writes, one-line pretrained-weight errors: docs/reliability.md),
# which `import mmfapn` alone does not.  A config that sets its own
# custom_imports replaces this list: keep both entries.
# (Fail loudly: a silently missing plugin would build nothing useful.)
custom_imports = dict(
    imports=['mmfapn', 'mmfapn.engine.harden'], allow_failed_imports=False)
# mmengine's Runner plus ExactResumeHook (a run resumed with --resume after
# SIGKILL at any moment continues the interrupted one bit for bit), the data
# checks (a missing data root or a malformed annotation file fails naming
# the file) and the hardening again when the runner is built.  A runner, not
# a custom hook: no stock base sets runner_type, while a config's own
# custom_hooks list would replace ours.
runner_type = 'DataCheckedRunner'

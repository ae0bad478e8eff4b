# Shared by every mmfapn config: import the plugin so that its modules are
# registered in mmdet's and mmseg's registries before the model is built.
# (Fail loudly: a silently missing plugin would build nothing useful.)
custom_imports = dict(imports=['mmfapn'], allow_failed_imports=False)

"""Importing this module installs mmfapn's checkpoint hardening
(:func:`mmfapn.engine.install_runtime_hardening`).

It exists for configs: ``configs/_base_/mmfapn.py`` lists it in
``custom_imports``, which mmengine's ``Config.fromfile`` imports while it
loads a config, so that loading any mmfapn config installs the hardening
(``import mmfapn`` alone does not).  In Python code call
:func:`~mmfapn.engine.install_runtime_hardening` instead.
"""
from .hardening import install_runtime_hardening

install_runtime_hardening()

"""mmfapn: FaPN (Feature-aligned Pyramid Network, ICCV 2021) for OpenMMLab.

Importing the package registers its modules in mmdet's and mmseg's
registries (whichever of the two is installed) and changes nothing else;
configs do this through ``custom_imports`` (see ``configs/_base_/mmfapn.py``).

The checkpoint hardening (safe loading of Runner checkpoints, atomic
checkpoint writes, one-line errors for pretrained weights that cannot be
loaded) replaces parts of mmengine, so it is installed explicitly: by
loading any mmfapn config (the shared fragment's ``custom_imports`` names
:mod:`mmfapn.engine.harden`), by its runner, by ``tools/train.py`` and
``tools/test.py``, and in a script of your own by
:func:`install_runtime_hardening` (docs/reliability.md).
"""
from .version import __version__
from . import engine, evaluation, models  # noqa: F401  (registration)
from .engine import install_runtime_hardening

__all__ = ['__version__', 'install_runtime_hardening']

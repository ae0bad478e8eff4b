"""mmfapn: FaPN (Feature-aligned Pyramid Network, ICCV 2021) for OpenMMLab.

Importing the package registers its modules in mmdet's and mmseg's model
registries (whichever of the two is installed); configs do this through
``custom_imports=dict(imports=['mmfapn'], allow_failed_imports=False)``
(see ``configs/_base_/mmfapn.py``).
"""
from .version import __version__
from . import engine, evaluation, models  # noqa: F401  (registration)

__all__ = ['__version__']

"""Where the configs are: mmfapn's own, in a checkout and in an installed
package, and the stock configs of the installed mmdet and mmseg.

The configs ship inside the package as ``mmfapn/.mim/configs`` (the place
OpenMMLab's ``mim`` and mmdet/mmseg use for their own): in the repository
that folder is a symbolic link to the top-level ``configs/``, so an
editable install reads the checkout's files, and building a wheel copies
the files behind the link into it (``[options.package_data]`` in
setup.cfg).  Code that needs a shipped config (the demo's two configs, the
detectron2 converter's ``*_d2-weights.py`` defaults) asks here instead of
walking up from its own file to a repository that an installed package
does not have.
"""
import importlib
import os.path as osp

from mmfapn.registry import SCOPES

# mmfapn/utils/config_files.py -> mmfapn/
PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))


def configs_root() -> str:
    """The folder holding mmfapn's configs (``seg/``, ``det/``,
    ``_base_/``): ``<package>/.mim/configs``."""
    return osp.join(PACKAGE_DIR, '.mim', 'configs')


def config_path(relative: str) -> str:
    """The path of a shipped config, ``relative`` to the configs folder
    (e.g. ``'seg/demo/sem-fpn_r18_fapn_toycity-demo.py'``); whether it
    exists is for the caller to check (and to say what is missing)."""
    return osp.join(configs_root(), relative)


def display_path(path: str) -> str:
    """``configs/<relative>`` for a shipped config (as the repository
    names it, wherever the package is installed), else ``path``."""
    rel = osp.relpath(osp.abspath(path), configs_root())
    if rel.startswith('..') or osp.isabs(rel):
        return path
    return osp.join('configs', rel)


def stock_configs_root(scope: str) -> str:
    """``<scope>/.mim/configs`` of the installed mmdet or mmseg: where
    ``mmdet::path`` / ``mmseg::path`` point.

    Raises:
        ValueError: ``scope`` is not one of :data:`mmfapn.registry.SCOPES`.
        FileNotFoundError: the toolbox was installed without its configs.
    """
    if scope not in SCOPES:
        raise ValueError(f'unknown toolbox {scope!r}; expected one of '
                         f'{SCOPES}')
    package = importlib.import_module(scope)
    root = osp.join(osp.dirname(package.__file__), '.mim', 'configs')
    if not osp.isdir(root):
        raise FileNotFoundError(f'{scope} ships no configs at {root}')
    return root

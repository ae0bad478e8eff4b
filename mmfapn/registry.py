"""One registration helper for mmdet and mmsegmentation.

mmdet's and mmseg's ``MODELS`` registries are siblings under mmengine's root
registry: a type written without a scope prefix is looked up only in the
current default scope.  Every mmfapn model class is therefore registered in
both, from one definition, by :func:`register_model`.  Either toolbox may be
absent; with neither installed the class goes to mmengine's root ``MODELS``
so that the modules stay buildable from plain mmengine configs.
"""
import importlib
from typing import Callable, List, Optional, Type, TypeVar

from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

T = TypeVar('T', bound=type)

#: The toolboxes mmfapn registers into and runs under, in lookup order.
#: Config checks and tools take the list of supported ``default_scope``
#: values from here.
SCOPES = ('mmdet', 'mmseg')


def available_model_registries() -> List[Registry]:
    """The ``MODELS`` registries of the installed toolboxes (mmdet, mmseg).

    Falls back to mmengine's root registry when neither is installed.
    """
    registries = []
    for scope in SCOPES:
        try:
            module = importlib.import_module(f'{scope}.registry')
        except ImportError:
            continue
        registries.append(module.MODELS)
    return registries or [MMENGINE_MODELS]


def register_model(cls: Optional[T] = None,
                   *,
                   name: Optional[str] = None,
                   force: bool = False) -> Callable[[T], T]:
    """Class decorator: register ``cls`` in every available ``MODELS``.

    Usage::

        @register_model
        class FaPN(BaseModule): ...

        @register_model(name='FaPNAlias')
        class Other(BaseModule): ...
    """

    def _register(klass: Type) -> Type:
        for registry in available_model_registries():
            registry.register_module(name=name, force=force, module=klass)
        return klass

    if cls is not None:
        return _register(cls)
    return _register

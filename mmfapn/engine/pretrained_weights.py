"""Pretrained initialisations that cannot be loaded, named in one line.

A stock mmdet/mmseg config initialises its backbone from
``torchvision://resnet50``, ``open-mmlab://...`` or a URL.  Without
torchvision, without network or with a local file that is absent, mmengine
fails deep inside ``model.init_weights()`` (e.g. ``ModuleNotFoundError: No
module named 'torchvision'``).  This module turns that into one
:class:`PretrainedWeightsError` line that names the config key, the
checkpoint and the override that trains from scratch::

    config model.backbone.init_cfg.checkpoint='torchvision://resnet50':
    pretrained weights cannot be loaded (torchvision is not installed); to
    train from scratch: --cfg-options model.backbone.init_cfg=None

Two places raise it:

* :func:`check_pretrained_weights`, before anything is built (mmfapn's
  ``tools/train.py``): what can be known without loading, i.e. a missing
  local file or a ``torchvision://`` name without torchvision.
* mmengine's ``Runner._init_model_weights``, wrapped by
  :func:`install_pretrained_weights_check` (part of the checkpoint
  hardening, :func:`~mmfapn.engine.hardening.install_runtime_hardening`),
  so that ``mim train mmdet|mmseg`` with an mmfapn config (whose
  ``custom_imports`` installs the hardening) gets the same line: the same
  checks first, then any error raised while mmengine's ``CheckpointLoader``
  loads a checkpoint (no network, a truncated download, an unknown name) is
  re-raised as :class:`PretrainedWeightsError`, chained to the original.
"""
import functools
import os.path as osp
import traceback
from typing import Iterator, List, Optional, Sequence, Tuple

from mmengine.config import Config, ConfigDict

from .safe_checkpoint import checkpoint_is_complete

# URI prefixes loaded through torchvision's model zoo by mmengine.
TORCHVISION_PREFIXES = ('torchvision://', 'modelzoo://')


class PretrainedWeightsError(ValueError):
    """A pretrained checkpoint named by the config cannot be loaded.

    A ``ValueError`` (a config value that cannot be used), so that the
    tools' ``except (FileNotFoundError, ValueError)`` prints it as one line.

    Attributes:
        key (str): config key naming the checkpoint, e.g.
            ``'model.backbone.init_cfg.checkpoint'`` (None if unknown).
        checkpoint (str): the checkpoint URI or path.
        reason (str): why it cannot be loaded.
    """

    def __init__(self, key: Optional[str], checkpoint: str, reason: str,
                 overrides: Sequence[str]) -> None:
        self.key, self.checkpoint, self.reason = key, checkpoint, reason
        self.overrides = list(overrides)
        where = f'config {key}={checkpoint!r}' if key else repr(checkpoint)
        fix = ' '.join(self.overrides) or '<that init_cfg>=None'
        super().__init__(f'{where}: pretrained weights cannot be loaded '
                         f'({reason}); to train from scratch: '
                         f'--cfg-options {fix}')


def _walk(node, path: str) -> Iterator[Tuple[str, str]]:
    """(key path, checkpoint) of every pretrained reference under node."""
    if isinstance(node, (dict, ConfigDict)):
        if node.get('type') == 'Pretrained' and isinstance(
                node.get('checkpoint'), str) and node['checkpoint']:
            yield f'{path}.checkpoint', node['checkpoint']
        for key, value in node.items():
            sub = f'{path}.{key}'
            if key == 'pretrained' and isinstance(value, str) and value:
                yield sub, value
            else:
                yield from _walk(value, sub)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _walk(value, f'{path}[{i}]')


def pretrained_references(cfg: Config) -> List[Tuple[str, str]]:
    """The pretrained checkpoints that ``cfg.model`` initialises from.

    ``init_cfg=dict(type='Pretrained', checkpoint=...)`` and
    ``pretrained='...'`` anywhere in the model (mmseg's segmentors pass
    ``model.pretrained`` to the backbone).

    Returns:
        list[tuple[str, str]]: ``(config key, checkpoint)``, e.g.
        ``('model.backbone.init_cfg.checkpoint', 'torchvision://resnet50')``.
    """
    model = cfg.get('model') if hasattr(cfg, 'get') else None
    if not isinstance(model, (dict, ConfigDict)):
        return []
    return list(_walk(model, 'model'))


def from_scratch_override(key: str) -> str:
    """The ``--cfg-options`` entry that drops the reference at ``key``:
    the whole ``init_cfg`` for a ``Pretrained`` one, else ``key=None``."""
    if '.init_cfg' in key:
        return key[:key.index('.init_cfg') + len('.init_cfg')] + '=None'
    return f'{key}=None'


def _is_local(checkpoint: str) -> bool:
    # every scheme of mmengine's CheckpointLoader (http://, open-mmlab://,
    # s3://, ...) has '://'; a path has not
    return '://' not in checkpoint


def unloadable_reason(checkpoint: str) -> Optional[str]:
    """Why ``checkpoint`` certainly cannot be loaded, without loading it.

    Only what is known for sure: a local file that does not exist or is
    truncated, or a ``torchvision://`` name when torchvision is not
    installed (or cannot be imported).  A remote checkpoint that is
    neither cached nor reachable is only found out when it is loaded (see
    :func:`install_pretrained_weights_check`).

    Returns:
        str | None: the reason, or None if nothing is known to be wrong.
    """
    if checkpoint.startswith(TORCHVISION_PREFIXES):
        try:
            import torchvision  # noqa: F401
        except ModuleNotFoundError as err:
            if err.name == 'torchvision':
                return 'torchvision is not installed'
            return f'torchvision cannot be imported: {err}'
        except Exception as err:  # a broken install, e.g. an ABI mismatch
            return (f'torchvision cannot be imported: '
                    f'{type(err).__name__}: {err}')
        return None
    if _is_local(checkpoint):
        path = osp.expanduser(checkpoint)
        if not osp.isfile(path):
            return 'file not found'
        if not checkpoint_is_complete(path):
            return 'the file is incomplete (truncated write)'
    return None


def _error(key: Optional[str], checkpoint: str, reason: str,
           refs: Sequence[Tuple[str, str]]) -> PretrainedWeightsError:
    # every pretrained reference is dropped to train from scratch
    keys = [k for k, _ in refs] or ([key] if key else [])
    overrides = list(dict.fromkeys(from_scratch_override(k) for k in keys))
    return PretrainedWeightsError(key, checkpoint, reason, overrides)


def check_pretrained_weights(cfg: Config) -> None:
    """Raise :class:`PretrainedWeightsError` for the first pretrained
    checkpoint of ``cfg.model`` that certainly cannot be loaded (see
    :func:`unloadable_reason`)."""
    refs = pretrained_references(cfg)
    for key, checkpoint in refs:
        reason = unloadable_reason(checkpoint)
        if reason is not None:
            raise _error(key, checkpoint, reason, refs)


def _checkpoint_being_loaded(err: BaseException) -> Optional[str]:
    """The ``filename`` that mmengine's ``CheckpointLoader.load_checkpoint``
    was loading when ``err`` was raised (None if it was raised elsewhere):
    the innermost such frame of the traceback."""
    found = None
    for frame, _ in traceback.walk_tb(err.__traceback__):
        code = frame.f_code
        if code.co_name == 'load_checkpoint' and code.co_filename.replace(
                '\\', '/').endswith('mmengine/runner/checkpoint.py'):
            filename = frame.f_locals.get('filename')
            if isinstance(filename, str):
                found = filename
    return found


def _checked_init_model_weights(original):

    @functools.wraps(original)
    def _init_model_weights(self) -> None:
        cfg = getattr(self, 'cfg', None)
        check_pretrained_weights(cfg)
        try:
            original(self)
        except PretrainedWeightsError:
            raise
        except Exception as err:
            checkpoint = _checkpoint_being_loaded(err)
            if checkpoint is None:  # not a loading error: as it was
                raise
            refs = pretrained_references(cfg)
            key = next((k for k, c in refs if c == checkpoint), None)
            reason = f'{type(err).__name__}: {err}'.splitlines()[0]
            raise _error(key, checkpoint, reason, refs) from err

    _init_model_weights.__mmfapn_pretrained_check__ = True
    return _init_model_weights


def install_pretrained_weights_check() -> None:
    """Wrap mmengine's ``Runner._init_model_weights`` (once) so that a
    pretrained checkpoint that cannot be loaded raises
    :class:`PretrainedWeightsError`; every other error is left as it is.
    """
    from mmengine.runner import Runner
    current = Runner._init_model_weights
    if getattr(current, '__mmfapn_pretrained_check__', False):
        return
    Runner._init_model_weights = _checked_init_model_weights(current)

"""State-dict keys and shapes of every shipped config's model, and of the
neck/head variants the ablation switches give, against stored fixtures.

The keys are a public contract: the detectron2 converter
(``mmfapn.utils.d2_convert``) writes them and every saved checkpoint holds
them, so a refactor of the model code must leave them exactly as they are.
The fixtures in ``tests/data/state_dict_keys/`` (one ``key<TAB>shape`` line
per state-dict entry, in state-dict order) were generated from the code
before the aligner refactor of issue 19.  Regenerate them only for a
deliberate, documented key change::

    .venv/bin/python tests/configs/test_state_dict_keys.py [NAME ...]

Models are built on the ``meta`` device (no memory, no init cost) without
pretrained weights; a model whose construction needs real tensors falls
back to the CPU.
"""
import os.path as osp
import sys
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / 'configs'
FIXTURES = REPO / 'tests' / 'data' / 'state_dict_keys'

Keys = List[Tuple[str, Tuple[int, ...]]]


def config_files() -> List[Path]:
    """Every config under configs/ that defines a model (``_base_``
    fragments are skipped: they are covered through their children)."""
    return sorted(p for p in CONFIGS.rglob('*.py')
                  if '_base_' not in p.relative_to(CONFIGS).parts)


def fixture_name(config: Path) -> str:
    rel = config.relative_to(CONFIGS).with_suffix('')
    return 'configs__' + '__'.join(rel.parts)


def _build(build: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    try:
        with torch.device('meta'):
            return build()
    except Exception:  # an op that needs real data at construction
        return build()


def _quiet_logs():
    import logging

    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    logger.setLevel(logging.WARNING)


def _config_model(config: Path) -> torch.nn.Module:
    from mmengine import Config
    from mmengine.registry import init_default_scope

    import mmfapn  # noqa: F401  (registers the modules)
    _quiet_logs()
    cfg = Config.fromfile(str(config))
    scope = cfg.get('default_scope', 'mmdet')
    init_default_scope(scope)
    model_cfg = cfg.model
    if 'pretrained' in model_cfg:
        model_cfg.pretrained = None
    if 'backbone' in model_cfg:
        model_cfg.backbone.init_cfg = None
    registry = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
    return _build(lambda: registry.build(model_cfg))


# --- variants of the switches that no shipped config uses (R50 channels,
# narrow outputs: the keys do not depend on the widths) --------------------
_R50 = [256, 512, 1024, 2048]
_ALIGNS = ('fam', 'fam_after_fusion', 'flow', 'deconv', 'none')
_LATERALS = ('fsm', 'se', 'conv')


def _neck(**kw) -> Callable[[], torch.nn.Module]:
    def build():
        from mmfapn.models import FaPN
        return FaPN(_R50, 32, 5, **kw)
    return build


def _seg_head(**kw) -> Callable[[], torch.nn.Module]:
    def build():
        from mmengine.registry import init_default_scope
        from mmseg.registry import MODELS

        import mmfapn  # noqa: F401
        init_default_scope('mmseg')
        return MODELS.build(dict(num_classes=19, norm_cfg=dict(type='BN'),
                                 **kw))
    return build


def _pixel_decoder(**kw) -> Callable[[], torch.nn.Module]:
    def build():
        from mmfapn.models.pixel_decoders import FaPNPixelDecoder
        return FaPNPixelDecoder(_R50, 256, 256, **kw)
    return build


def _variants() -> Dict[str, Callable[[], torch.nn.Module]]:
    out = {}
    for lateral in _LATERALS:
        for align in _ALIGNS:
            out[f'neck__lateral-{lateral}__align-{align}'] = _neck(
                lateral=lateral, align=align)
    out['neck__fpn-mode'] = _neck(lateral='conv', align='none',
                                  top_output_conv=True)
    out['neck__extra-output-convs-2'] = _neck(extra_output_convs=2)
    out['neck__add-extra-convs-on-input'] = _neck(add_extra_convs='on_input')
    out['neck__align-flow__context-aligncm'] = _neck(
        align='flow', context_cfg=dict(type='AlignCM', in_channels=2048,
                                       channels=64))
    out['neck__norm-gn'] = _neck(norm_cfg=dict(type='GN', num_groups=8))
    for use_fam in (False, True):
        for use_fsm in (False, True):
            for fusion in ('sum', 'concat'):
                name = (f'realtime-head__fam-{int(use_fam)}__fsm-'
                        f'{int(use_fsm)}__{fusion}')
                out[name] = _seg_head(
                    type='RealtimeFaPNHead', in_channels=[128, 256, 512],
                    channels=64, fpn_channels=128, use_fam=use_fam,
                    use_fsm=use_fsm, fusion=fusion)
    out['uper-head'] = _seg_head(type='UPerFaPNHead', in_channels=_R50,
                                 in_index=[0, 1, 2, 3], channels=64)
    out['pixel-decoder__default'] = _pixel_decoder()
    out['pixel-decoder__fsm__own-offset-norm'] = _pixel_decoder(
        use_fsm=True, share_offset_norm=False)
    return out


def models() -> Dict[str, Callable[[], torch.nn.Module]]:
    """name -> builder of every model whose keys are stored."""
    out = {fixture_name(p): (lambda p=p: _config_model(p))
           for p in config_files()}
    out.update(_variants())
    return out


def keys_of(model: torch.nn.Module) -> Keys:
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


def fixture_path(name: str) -> Path:
    return FIXTURES / f'{name}.tsv'


def read_fixture(name: str) -> Keys:
    keys = []
    for line in fixture_path(name).read_text().splitlines():
        key, shape = line.split('\t')
        keys.append((key, tuple(int(s) for s in shape.split('x') if s)))
    return keys


def write_fixture(name: str, keys: Keys) -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    lines = [f'{k}\t{"x".join(str(s) for s in shape)}' for k, shape in keys]
    fixture_path(name).write_text('\n'.join(lines) + '\n')


MODELS = models()


def test_every_model_has_a_fixture():
    stored = {p.stem for p in FIXTURES.glob('*.tsv')}
    assert set(MODELS) == stored, (
        f'without fixture: {sorted(set(MODELS) - stored)}; stale fixtures: '
        f'{sorted(stored - set(MODELS))} (see this file\'s docstring)')


@pytest.mark.parametrize('name', sorted(MODELS))
def test_state_dict_keys_unchanged(name):
    if not fixture_path(name).exists():
        pytest.fail(f'no fixture for {name} (see this file\'s docstring)')
    expected = dict(read_fixture(name))
    got = dict(keys_of(_build(MODELS[name])))
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    assert not missing and not unexpected, (
        f'{name}: {len(missing)} keys missing (first: {missing[:3]}), '
        f'{len(unexpected)} unexpected (first: {unexpected[:3]})')
    reshaped = {k: (expected[k], got[k]) for k in expected
                if expected[k] != got[k]}
    assert not reshaped, f'{name}: shapes changed: {reshaped}'


def main(argv: List[str]) -> None:
    names = argv or sorted(MODELS)
    for name in names:
        keys = keys_of(_build(MODELS[name]))
        write_fixture(name, keys)
        print(f'{name}: {len(keys)} keys -> '
              f'{osp.relpath(fixture_path(name), REPO)}')


if __name__ == '__main__':
    main(sys.argv[1:])

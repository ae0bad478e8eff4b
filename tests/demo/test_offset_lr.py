"""configs/_base_/fapn_offset_lr.py: the offset/mask conv learning-rate
multiplier reaches the optimiser's param group of every offset/mask conv
of every FaPN module type, and nothing else (the real optimiser, built by
mmengine's build_optim_wrapper from the demo config)."""
from pathlib import Path

import pytest
import torch
from torch import nn

import mmfapn  # noqa: F401  (registers the modules)
from mmfapn.models.layers import FeatureAlignModule
from mmfapn.models.layers.flow_head import FlowHead

REPO = Path(__file__).resolve().parents[2]
FRAGMENT = REPO / 'configs' / '_base_' / 'fapn_offset_lr.py'
DEMO = REPO / 'configs' / 'seg' / 'demo'


def _offset_params(model):
    """Parameters of the offset/mask convs, found by module type (not by
    name): FAM's 1x1 offset fusion conv and its 3x3 offset/mask conv,
    FlowHead's (AlignFA, AlignCM) 1x1 hidden conv and 3x3 flow conv."""
    found = {}
    for name, m in model.named_modules():
        convs = []
        if isinstance(m, FeatureAlignModule):
            if m.offset_fusion is not None:
                convs.append(('offset_fusion.conv', m.offset_fusion.conv))
            convs.append(('dcn.conv_offset', m.dcn.conv_offset))
        elif isinstance(m, FlowHead):
            convs += [('hidden.conv', m.hidden.conv), ('flow', m.flow)]
        for sub, conv in convs:
            for pname, p in conv.named_parameters():
                found[id(p)] = f'{name}.{sub}.{pname}'
    return found


def _lr_by_param(model, optim_wrapper_cfg):
    from mmengine.optim import build_optim_wrapper
    wrapper = build_optim_wrapper(model, optim_wrapper_cfg)
    lrs = {}
    for group in wrapper.optimizer.param_groups:
        for p in group['params']:
            assert id(p) not in lrs, 'a parameter in two groups'
            lrs[id(p)] = group['lr']
    names = {id(p): n for n, p in model.named_parameters()}
    assert set(lrs) == set(names)  # every parameter is optimised
    return lrs, names


@pytest.fixture(scope='module')
def demo_cfg():
    from mmfapn.engine import load_config
    return load_config(str(DEMO / 'sem-fpn_r18_fapn_toycity-demo.py'))


def _every_module_type(mmseg_scope):
    """One small instance of every FaPN module that holds offset/mask
    convs, next to a backbone with its own deformable convs (mmseg ResNet
    with DCNv2, whose ``conv2.conv_offset`` must keep the full rate)."""
    from mmfapn.models.pixel_decoders import FaPNPixelDecoder
    ch = [8, 16, 32, 64]
    parts = dict(
        neck=mmseg_scope.build(dict(type='FaPN', in_channels=ch,
                                    out_channels=16, num_outs=4)),
        neck_flow_cm=mmseg_scope.build(dict(
            type='FaPN', in_channels=ch, out_channels=16, num_outs=4,
            align='flow', lateral='conv',
            context_cfg=dict(type='AlignCM', in_channels=64, channels=8))),
        realtime_head=mmseg_scope.build(dict(
            type='FaPNHead', in_channels=[16, 32, 64], channels=16,
            fpn_channels=16, num_classes=3, norm_cfg=dict(type='BN'))),
        uper_head=mmseg_scope.build(dict(
            type='UPerFaPNHead', in_channels=ch, in_index=[0, 1, 2, 3],
            pool_scales=(1, 2), channels=16, num_classes=3,
            norm_cfg=dict(type='BN'), deform_groups=4)),
        pixel_decoder=FaPNPixelDecoder([8, 16, 32], 16, 8,
                                       norm_cfg=dict(type='GN',
                                                     num_groups=4),
                                       deform_groups=2),
        fam_after_fusion=FeatureAlignModule(16, deform_groups=2,
                                            single_input=True),
        # Bottleneck: BasicBlock has no DCN option
        backbone=mmseg_scope.build(dict(
            type='ResNet', depth=50, stem_channels=8, base_channels=8,
            dcn=dict(type='DCNv2', deform_groups=1, fallback_on_stride=False),
            stage_with_dcn=(False, True, True, True))),
    )
    return nn.ModuleDict(parts)


def test_fragment_value_is_the_demo_recipe(demo_cfg):
    from mmengine.config import Config
    frag = Config.fromfile(str(FRAGMENT))
    mult = frag.fapn_offset_lr_mult
    keys = frag.fapn_offset_paramwise_cfg['custom_keys']
    assert {v['lr_mult'] for v in keys.values()} == {mult}
    assert demo_cfg.optim_wrapper.paramwise_cfg.to_dict() == \
        frag.fapn_offset_paramwise_cfg.to_dict()
    assert demo_cfg.optim_wrapper.optimizer.type == 'AdamW'


def test_multiplier_reaches_every_offset_conv_and_nothing_else(
        demo_cfg, mmseg_scope):
    torch.manual_seed(0)
    model = _every_module_type(mmseg_scope)
    expected = _offset_params(model)
    # every module type contributes
    for part in ('neck', 'neck_flow_cm', 'realtime_head', 'uper_head',
                 'pixel_decoder', 'fam_after_fusion'):
        assert any(n.startswith(part + '.') for n in expected.values()), part
    assert any('.context.flow_head.' in n for n in expected.values())
    assert any('coarse_flow' in n for n in expected.values())
    assert any('fine_flow' in n for n in expected.values())
    # the backbone DCN's offsets exist and are not offset/mask convs here
    dcn_offsets = [n for n, _ in model.named_parameters()
                   if n.startswith('backbone.') and 'conv_offset' in n]
    assert dcn_offsets
    cfg = demo_cfg.optim_wrapper.to_dict()
    base = cfg['optimizer']['lr']
    mult = next(iter(cfg['paramwise_cfg']['custom_keys'].values()))[
        'lr_mult']
    assert mult != 1
    lrs, names = _lr_by_param(model, cfg)
    reduced = {i for i, lr in lrs.items()
               if lr == pytest.approx(base * mult)}
    assert {names[i] for i in reduced} == set(expected.values())
    for i, lr in lrs.items():
        if i not in reduced:
            assert lr == pytest.approx(base), names[i]


def test_demo_models_groups(demo_cfg):
    """The demo's FaPN: the 3 FAMs' offset fusion weights and offset/mask
    conv weights and biases (9 tensors) at the multiplier; FPN, built from
    the same optimiser config, has none."""
    import copy

    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    from mmfapn.engine import load_config
    init_default_scope('mmseg')
    cfg = demo_cfg.optim_wrapper.to_dict()
    base = cfg['optimizer']['lr']
    mult = next(iter(cfg['paramwise_cfg']['custom_keys'].values()))[
        'lr_mult']
    fapn = MODELS.build(copy.deepcopy(demo_cfg.model))
    lrs, names = _lr_by_param(fapn, cfg)
    reduced = sorted(names[i] for i, lr in lrs.items()
                     if lr == pytest.approx(base * mult))
    assert reduced == sorted(
        f'neck.align_modules.{i}.{p}' for i in range(3)
        for p in ('offset_fusion.conv.weight', 'dcn.conv_offset.weight',
                  'dcn.conv_offset.bias'))
    fpn_cfg = load_config(str(DEMO / 'sem-fpn_r18_fpn_toycity-demo.py'))
    assert fpn_cfg.optim_wrapper.to_dict() == cfg
    fpn = MODELS.build(copy.deepcopy(fpn_cfg.model))
    lrs, _ = _lr_by_param(fpn, cfg)
    assert all(lr == pytest.approx(base) for lr in lrs.values())


def test_demo_override_changes_every_key(demo_cfg):
    import copy

    from mmfapn.demo.pipeline import set_offset_lr_mult
    cfg = copy.deepcopy(demo_cfg)
    keys = set_offset_lr_mult(cfg, 0.01)
    assert len(keys) == 6
    assert {v['lr_mult'] for v in
            cfg.optim_wrapper.paramwise_cfg.custom_keys.values()} == {0.01}

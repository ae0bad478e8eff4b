"""Every FaPN module under ``torch.autocast``: forward and backward run, the
outputs and gradients are finite, and the outputs stay within a stated
relative error of the float32 forward.

CPU bfloat16 always; CUDA float16 and bfloat16 when a GPU exists (``make
gpu-check`` runs this file there).  Offsets and flows are made non-zero
(about a pixel) so the sampling itself is exercised, not only the
zero-offset start.

Bounds: the norm-wise relative error ``|out - ref| / |ref|`` over all
outputs is below 3% for bfloat16 (8 significant bits; a few layers of
random convs) and 0.5% for float16 (11 bits).
"""
import pytest
import torch

import mmfapn  # noqa: F401  (registers the modules)
from mmfapn.models import FaPN
from mmfapn.models.layers import (AlignCM, AlignFA, DeconvUpsample,
                                   FeatureAlignModule, FeatureSelectionModule)
from mmfapn.models.layers.flow_head import FlowHead
from mmfapn.models.layers.flow_warp import flow_warp
from mmfapn.models.necks.fapn import ALIGNS
from mmfapn.models.pixel_decoders import FaPNPixelDecoder
from mmfapn.ops import GuidedModulatedDeformConv2d

BOUND = {torch.bfloat16: 0.03, torch.float16: 0.005}

_CUDA = pytest.mark.skipif(not torch.cuda.is_available(),
                           reason='needs a CUDA GPU (make gpu-check)')
MODES = [
    pytest.param('cpu', torch.bfloat16, id='cpu-bf16'),
    pytest.param('cuda', torch.float16, id='cuda-fp16', marks=_CUDA),
    pytest.param('cuda', torch.bfloat16, id='cuda-bf16', marks=_CUDA),
]


def randomise_offsets(module: torch.nn.Module, std: float = 0.02) -> None:
    """Non-zero offset/mask and flow convs (they start at zero)."""
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for m in module.modules():
            convs = []
            if isinstance(m, GuidedModulatedDeformConv2d):
                convs = [m.conv_offset]
            elif isinstance(m, FlowHead):
                convs = [m.flow]
            for conv in convs:
                for p in conv.parameters():
                    p.copy_(torch.randn(p.shape, generator=g) * std)


def _tensors(out):
    if isinstance(out, torch.Tensor):
        return [out]
    return [t for o in out for t in _tensors(o)]


def _to(obj, device, grad=False):
    """Tensors of a (nested) list on ``device``, leaves needing grad."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device).requires_grad_(grad)
    return [_to(o, device, grad) for o in obj]


def _feats(shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g) for s in shapes]


def check_autocast(module, make_inputs, device, dtype, relative_error,
                   call=None, bound=None, low_precision_output=True):
    """Float32 reference, then forward + backward under autocast.
    ``low_precision_output``: the output has autocast's dtype (not so for
    a module whose last op warps a float32 input, e.g. AlignFA)."""
    call = call or (lambda m, args: m(*args))
    module = module.to(device)
    ref = [t.float() for t in _tensors(call(module, _to(
        make_inputs(), device)))]
    module.zero_grad()
    inputs = _to(make_inputs(), device, grad=True)
    args = _tensors(inputs)
    with torch.autocast(device, dtype=dtype):
        out = _tensors(call(module, inputs))
    if low_precision_output:
        assert any(o.dtype == dtype for o in out), [o.dtype for o in out]
    for o in out:
        assert torch.isfinite(o).all()
    g = torch.Generator().manual_seed(1)
    loss = sum((o.float() * torch.randn(o.shape, generator=g).to(device))
               .sum() for o in out)
    loss.backward()
    grads = [a.grad for a in args] + [
        p.grad for p in module.parameters() if p.requires_grad]
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads
               if gr is not None)
    assert any(a.grad is not None and a.grad.abs().sum() > 0 for a in args)
    rel = relative_error(out, ref)
    assert rel < (bound or BOUND[dtype]), f'relative error {rel:.2e}'
    return module


NECK_CHANNELS = [16, 24, 32, 40]
NECK_SHAPES = [(2, 16, 17, 23), (2, 24, 9, 12), (2, 32, 5, 6),
               (2, 40, 3, 3)]


def _neck(**kw):
    torch.manual_seed(0)
    neck = FaPN(NECK_CHANNELS, 32, num_outs=5, deform_groups=4, **kw)
    randomise_offsets(neck)
    return neck


NECK_CASES = [dict(align=a) for a in ALIGNS] + [
    dict(lateral='se'),
    dict(lateral='conv'),
    dict(context_cfg=dict(type='AlignCM', in_channels=40, channels=16)),
    dict(dcn_impl='mmcv'),
]


@pytest.mark.parametrize('device, dtype', MODES)
@pytest.mark.parametrize(
    'kwargs', NECK_CASES,
    ids=[','.join(f'{k}={v if isinstance(v, str) else v["type"]}'
                  for k, v in c.items()) for c in NECK_CASES])
def test_neck(kwargs, device, dtype, rel_error):
    neck = check_autocast(_neck(**kwargs), lambda: [_feats(NECK_SHAPES)],
                          device, dtype, rel_error)
    if kwargs.get('align', 'fam') == 'fam':
        # the offsets learn under autocast too
        grad = neck.align_modules[0].dcn.conv_offset.weight.grad
        assert grad is not None and grad.abs().sum() > 0


def _layer_cases():
    torch.manual_seed(0)
    fam = FeatureAlignModule(32, deform_groups=4)
    fam_single = FeatureAlignModule(32, deform_groups=4, single_input=True)
    # 16 x 24 = 384 pixels: bfloat16 flat indices of this map used to
    # point past its end
    align_fa = AlignFA(32)
    align_cm = AlignCM(64, 16)
    for m in (fam, fam_single, align_fa, align_cm):
        randomise_offsets(m)
    return {
        'fsm': (FeatureSelectionModule(16, 32),
                lambda: _feats([(2, 16, 9, 11)])),
        'fam': (fam, lambda: _feats([(2, 32, 9, 11), (2, 32, 5, 6)])),
        'fam_single_input': (fam_single, lambda: _feats([(2, 32, 9, 11)])),
        'align_fa': (align_fa,
                     lambda: _feats([(2, 32, 16, 24), (2, 32, 8, 12)])),
        'align_cm': (align_cm, lambda: _feats([(2, 64, 7, 9)])),
        'deconv': (DeconvUpsample(32), lambda: _feats([(2, 32, 5, 6)])),
    }


LAYERS = sorted(_layer_cases())


@pytest.mark.parametrize('device, dtype', MODES)
@pytest.mark.parametrize('name', LAYERS)
def test_layer(name, device, dtype, rel_error):
    module, make_inputs = _layer_cases()[name]
    call = None
    if name == 'deconv':
        call = lambda m, args: m(args[0], (9, 11))  # noqa: E731
    check_autocast(module, make_inputs, device, dtype, rel_error,
                   call=call,
                   low_precision_output=name not in ('align_fa', 'fam'))


@pytest.mark.parametrize('device, dtype', MODES)
def test_flow_warp(device, dtype):
    """The warp alone, fed what autocast's convs give it: a low-precision
    map and flow.  Positions are computed in float32, so the result is the
    float32 warp of the rounded inputs, to the output's precision."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8, 16, 24, generator=g)
    flow = torch.randn(2, 2, 16, 24, generator=g) * 3
    xl, fl = x.to(device, dtype), flow.to(device, dtype)
    xl.requires_grad_()
    fl.requires_grad_()
    out = flow_warp(xl, fl)
    assert out.dtype == dtype
    ref = flow_warp(xl.detach().float(), fl.detach().float())
    err = (out.float() - ref).abs().max() / ref.abs().max()
    assert err < BOUND[dtype] / 3, f'{err:.2e}'
    out.float().sum().backward()
    assert torch.isfinite(xl.grad).all() and torch.isfinite(fl.grad).all()
    assert fl.grad.abs().sum() > 0


def _seg_head(mmseg_scope, type_name, **kw):
    torch.manual_seed(0)
    # no dropout: the float32 reference and the autocast run must match
    head = mmseg_scope.build(dict(type=type_name, dropout_ratio=0.0, **kw))
    head.init_weights()
    randomise_offsets(head)
    return head


@pytest.mark.parametrize('device, dtype', MODES)
def test_uper_fapn_head(device, dtype, mmseg_scope, rel_error):
    head = _seg_head(
        mmseg_scope, 'UPerFaPNHead', in_channels=[16, 24, 40, 64],
        in_index=[0, 1, 2, 3], pool_scales=(1, 2), channels=32,
        num_classes=5, norm_cfg=dict(type='BN'), deform_groups=4)
    shapes = [(2, 16, 15, 21), (2, 24, 8, 11), (2, 40, 4, 6), (2, 64, 2, 3)]
    check_autocast(head, lambda: [_feats(shapes)], device, dtype, rel_error)


@pytest.mark.parametrize('device, dtype', MODES)
def test_fapn_realtime_head(device, dtype, mmseg_scope, rel_error):
    head = _seg_head(
        mmseg_scope, 'RealtimeFaPNHead', in_channels=[16, 24, 32],
        channels=16,
        fpn_channels=32, num_classes=5, norm_cfg=dict(type='BN'))
    shapes = [(2, 16, 9, 13), (2, 24, 5, 7), (2, 32, 3, 4)]
    check_autocast(head, lambda: [_feats(shapes)], device, dtype, rel_error)


@pytest.mark.parametrize('device, dtype', MODES)
def test_pixel_decoder(device, dtype, rel_error):
    torch.manual_seed(0)
    dec = FaPNPixelDecoder([16, 32, 64], 32, 32,
                           norm_cfg=dict(type='GN', num_groups=4),
                           deform_groups=4)
    randomise_offsets(dec)
    shapes = [(2, 16, 13, 11), (2, 32, 7, 6), (2, 64, 4, 3)]
    check_autocast(dec, lambda: _feats(shapes), device, dtype, rel_error,
                   call=lambda m, args: m(args, None))

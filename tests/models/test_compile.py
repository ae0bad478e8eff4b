"""torch.compile: no graph break anywhere in mmfapn's modules (the
deformable conv is the custom op ``mmfapn::modulated_deform_conv2d``), and
compiled equals eager; no host synchronisation in the default CUDA
forward."""
import pytest
import torch

import mmfapn  # noqa: F401  (registers the modules)
from mmfapn.models import FaPN
from mmfapn.models.layers import FeatureAlignModule, FeatureSelectionModule
from mmfapn.models.necks.fapn import ALIGNS
from mmfapn.models.pixel_decoders import FaPNPixelDecoder
from mmfapn.ops import modulated_deform_conv2d

NECK_CHANNELS = [16, 24, 32, 40]
NECK_SHAPES = [(2, 16, 17, 23), (2, 24, 9, 12), (2, 32, 5, 6),
               (2, 40, 3, 3)]


def _feats(shapes, seed=0, device='cpu'):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g).to(device) for s in shapes]


def graph_breaks(fn, *args) -> int:
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(fn)(*args)
    reasons = [str(b.reason) for b in explanation.break_reasons]
    assert explanation.graph_break_count == 0, reasons
    return explanation.graph_count


def _neck(**kw):
    torch.manual_seed(0)
    return FaPN(NECK_CHANNELS, 32, num_outs=5, deform_groups=4, **kw)


@pytest.mark.parametrize('align', ALIGNS)
def test_neck_has_no_graph_break(align):
    neck = _neck(align=align).eval()
    assert graph_breaks(neck, _feats(NECK_SHAPES)) == 1


@pytest.mark.parametrize('impl', ['torch', 'mmcv'])
def test_neck_trains_without_graph_break(impl):
    """The training forward (train mode, loss) is one graph with either
    deformable-conv kernel, and AOTAutograd traces its backward through the
    custom op's autograd formula (fullgraph: an error on any break); the
    gradients equal eager's.  (``Tensor.backward()`` itself is a break in
    every model, so it stays outside.)"""
    neck = _neck(dcn_impl=impl).train()
    with torch.no_grad():  # non-zero offsets
        for fam in neck.align_modules:
            fam.dcn.conv_offset.weight.normal_(0, 0.02)

    def loss_fn(feats):
        return sum(o.square().mean() for o in neck(feats))

    graph_breaks(loss_fn, _feats(NECK_SHAPES))

    def grads(fn):
        neck.zero_grad()
        fn(_feats(NECK_SHAPES)).backward()
        return [p.grad.clone() for p in neck.parameters()]

    eager = grads(loss_fn)
    torch._dynamo.reset()
    compiled = grads(torch.compile(loss_fn, backend='aot_eager',
                                   fullgraph=True))
    for a, b in zip(compiled, eager):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_layers_have_no_graph_break():
    torch.manual_seed(0)
    fam = FeatureAlignModule(32, deform_groups=4)
    graph_breaks(fam, *_feats([(2, 32, 9, 11), (2, 32, 5, 6)]))
    fam_single = FeatureAlignModule(32, deform_groups=4, single_input=True)
    graph_breaks(fam_single, *_feats([(2, 32, 9, 11)]))
    graph_breaks(FeatureSelectionModule(16, 32), *_feats([(2, 16, 9, 11)]))


def test_heads_and_pixel_decoder_have_no_graph_break(mmseg_scope):
    torch.manual_seed(0)
    uper = mmseg_scope.build(dict(
        type='UPerFaPNHead', in_channels=[16, 24, 40, 64],
        in_index=[0, 1, 2, 3], pool_scales=(1, 2), channels=32,
        num_classes=5, norm_cfg=dict(type='BN'), deform_groups=4)).eval()
    graph_breaks(uper, _feats([(2, 16, 15, 21), (2, 24, 8, 11),
                               (2, 40, 4, 6), (2, 64, 2, 3)]))
    realtime = mmseg_scope.build(dict(
        type='RealtimeFaPNHead', in_channels=[16, 24, 32], channels=16,
        fpn_channels=32, num_classes=5, norm_cfg=dict(type='BN'))).eval()
    graph_breaks(realtime, _feats([(2, 16, 9, 13), (2, 24, 5, 7),
                                   (2, 32, 3, 4)]))
    dec = FaPNPixelDecoder([16, 32, 64], 32, 32,
                           norm_cfg=dict(type='GN', num_groups=4),
                           deform_groups=4).eval()
    graph_breaks(lambda f: dec(f, None),
                 _feats([(2, 16, 13, 11), (2, 32, 7, 6), (2, 64, 4, 3)]))


def test_autocast_region_has_no_graph_break():
    neck = _neck().eval()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        graph_breaks(neck, _feats(NECK_SHAPES))


def test_the_op_is_one_opaque_node():
    """Dynamo records the custom op itself (forward) — not the sampling
    inside it — so inductor never generates code for the sampling."""
    from torch._dynamo.testing import CompileCounterWithBackend
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 8, 6, 7, generator=g)
    offset = torch.randn(1, 2 * 2 * 9, 6, 7, generator=g)
    mask = torch.rand(1, 2 * 9, 6, 7, generator=g)
    weight = torch.randn(4, 8, 3, 3, generator=g)
    backend = CompileCounterWithBackend('eager')
    torch._dynamo.reset()
    fn = torch.compile(
        lambda *a: modulated_deform_conv2d(*a, None, 1, 1, 1, 2, 'torch'),
        backend=backend, fullgraph=True)
    fn(x, offset, mask, weight)
    targets = [str(n.target) for gm in backend.graphs
               for n in gm.graph.nodes if n.op == 'call_function']
    assert 'mmfapn.modulated_deform_conv2d.default' in targets, targets
    assert not any('grid_sampler' in t for t in targets), targets


@pytest.mark.slow
def test_compiled_equals_eager_forward_and_backward():
    """Inductor-compiled FAM equals eager: outputs and every gradient within
    1e-4 (absolute and relative, float32: inductor reorders the sums of
    the convs around the opaque deformable conv)."""
    torch.manual_seed(0)
    fam = FeatureAlignModule(32, deform_groups=4)
    with torch.no_grad():  # non-zero offsets
        fam.dcn.conv_offset.weight.normal_(0, 0.02)

    def run(module):
        lat, coarse = (t.requires_grad_() for t in _feats(
            [(2, 32, 9, 11), (2, 32, 5, 6)]))
        fam.zero_grad()
        out = module(lat, coarse)
        out.square().sum().backward()
        return [out.detach(), lat.grad, coarse.grad] + [
            p.grad.clone() for p in fam.parameters()]

    eager = run(fam)
    torch._dynamo.reset()
    compiled = run(torch.compile(fam))
    for a, b in zip(compiled, eager):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason='needs a CUDA GPU (make gpu-check)')
def test_default_cuda_forward_reads_no_tensor_value():
    """No device-to-host synchronisation in the neck's default forward (the
    NaN/Inf check is on for CPU inputs only, see FaPN's check_finite)."""
    neck = _neck().cuda().eval()
    feats = _feats(NECK_SHAPES, device='cuda')
    neck(feats)  # warm-up: lazy initialisation may synchronise
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        with torch.no_grad():
            neck(feats)
    finally:
        torch.cuda.set_sync_debug_mode('default')

"""The ablation switches of the FaPN neck (FaPN Table 1, AlignSeg): exact
parameter counts, structure, forward recomputed by hand, FPN equivalence,
and the one-input FAM / deconv building blocks."""
import pytest
import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule

from mmfapn.models import FaPN, FeatureAlignModule, FeatureSelectionModule
from mmfapn.models.layers import AlignCM, AlignFA, DeconvUpsample, SumFusion

R50 = [256, 512, 1024, 2048]
FPN_NECK = 3_344_384
# full neck parameters, ResNet-50 channels, out 256, 4 outputs, dg 8
NECK_PARAMS = {
    (): 7_786_888,
    (('lateral', 'se'), ): 7_786_888,
    (('lateral', 'conv'), ): 6_411_400,
    (('align', 'fam_after_fusion'), ): 7_393_672,
    (('align', 'deconv'), ): 7_276_288,
    (('align', 'flow'), ): 4_946_944,
    (('align', 'none'), ): 4_129_792,
    (('lateral', 'conv'), ('align', 'none'), ('top_output_conv', True)):
    FPN_NECK,
    (('lateral', 'conv'), ('align', 'none'), ('top_output_conv', True),
     ('extra_output_convs', 2)): FPN_NECK + 8 * 590_080,
}
VARIANTS = [
    dict(lateral='se'),
    dict(lateral='conv'),
    dict(align='fam_after_fusion'),
    dict(align='flow'),
    dict(align='deconv'),
    dict(align='none'),
    dict(lateral='conv', align='none', top_output_conv=True,
         extra_output_convs=2),
]


def _feats(channels, sizes, batch=2, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, c, h, w, generator=g).to(dtype)
            for c, (h, w) in zip(channels, sizes)]


@pytest.mark.parametrize('kwargs', sorted(NECK_PARAMS), ids=str)
def test_neck_param_counts(kwargs, count_params):
    neck = FaPN(R50, 256, 4, **dict(kwargs))
    assert count_params(neck) == NECK_PARAMS[kwargs]


def test_deltas_over_fpn_match_the_issue():
    """The Table 1 rows as deltas over FPN (issue #9)."""
    delta = {k: v - FPN_NECK for k, v in NECK_PARAMS.items()}
    assert delta[(('lateral', 'conv'), )] == 3_067_016  # FAM, no FSM
    assert delta[()] == 4_442_504  # FaPN
    assert delta[(('align', 'fam_after_fusion'), )] == 4_049_288
    # the FAM-without-FSM figure includes the plain laterals' biases (FPN
    # keeps them; FSM's convs have none)
    neck = FaPN(R50, 256, 4, lateral='conv')
    assert sum(m.conv.bias.numel() for m in neck.lateral_convs[:-1]) == 768


def test_structure_of_each_switch():
    se = FaPN(R50, 16, 4, lateral='se')
    assert all(isinstance(m, FeatureSelectionModule) and not m.skip
               for m in se.lateral_convs[:-1])
    conv = FaPN(R50, 16, 4, lateral='conv')
    for m in conv.lateral_convs[:-1]:
        assert type(m) is ConvModule and m.conv.kernel_size == (1, 1)
        assert m.conv.bias is not None
    after = FaPN(R50, 16, 4, align='fam_after_fusion')
    for m in after.align_modules:
        assert isinstance(m, FeatureAlignModule) and m.single_input
        assert m.offset_fusion is None
        assert m.dcn.conv_offset.in_channels == 16
    assert all(isinstance(m, AlignFA)
               for m in FaPN(R50, 16, 4, align='flow').align_modules)
    deconv = FaPN(R50, 16, 4, align='deconv')
    for m in deconv.align_modules:
        assert isinstance(m, DeconvUpsample)
        d = m.deconv
        assert (d.kernel_size, d.stride, d.padding) == ((4, 4), (2, 2),
                                                        (1, 1))
    # FPN's plain fusion is an aligner too, without parameters
    plain = FaPN(R50, 16, 4, align='none').align_modules
    assert len(plain) == 3 and all(type(m) is SumFusion for m in plain)
    assert not list(plain.parameters())
    extra = FaPN(R50, 16, 4, top_output_conv=True, extra_output_convs=2)
    assert len(extra.fpn_convs) == 4
    assert [len(s) for s in extra.extra_output_convs] == [2, 2, 2, 2]


@pytest.mark.parametrize('kwargs', VARIANTS, ids=str)
def test_forward_recomputed_by_hand(kwargs):
    torch.manual_seed(0)
    neck = FaPN([8, 16, 24], 8, 4, deform_groups=2, **kwargs).double()
    neck.eval()
    for m in neck.modules():  # give every aligner something to do
        if isinstance(m, FeatureAlignModule):
            torch.nn.init.normal_(m.dcn.conv_offset.weight, std=0.1)
        if isinstance(m, AlignFA):
            torch.nn.init.normal_(m.coarse_flow.flow.weight, std=0.1)
            torch.nn.init.normal_(m.fine_flow.flow.weight, std=0.1)
        if isinstance(m, DeconvUpsample):
            torch.nn.init.normal_(m.deconv.weight, std=0.1)
    c3, c4, c5 = _feats([8, 16, 24], [(13, 11), (7, 6), (4, 3)],
                        dtype=torch.float64)
    align = kwargs.get('align', 'fam')

    def up(x, size):
        return F.interpolate(x, size=size, mode='bilinear',
                             align_corners=False)

    def fuse(j, lat, prev):
        m = neck.align_modules[j] if len(neck.align_modules) else None
        if align in ('fam', 'flow'):
            return m(lat, prev)
        if align == 'fam_after_fusion':
            x = lat + up(prev, lat.shape[-2:])
            return F.relu(m.dcn(x, x))
        if align == 'deconv':
            d = m.deconv(prev)[..., :lat.shape[-2], :lat.shape[-1]]
            return lat + d
        return lat + up(prev, lat.shape[-2:])

    with torch.no_grad():
        outs = neck([c3, c4, c5])
        p5 = neck.lateral_convs[2](c5)
        prev4 = fuse(1, neck.lateral_convs[1](c4), p5)
        prev3 = fuse(0, neck.lateral_convs[0](c3), prev4)
        expected = [neck.fpn_convs[0](prev3), neck.fpn_convs[1](prev4)]
        expected.append(neck.fpn_convs[2](p5)
                        if kwargs.get('top_output_conv') else p5)
        if kwargs.get('extra_output_convs'):
            expected = [s(e) for s, e in zip(neck.extra_output_convs,
                                             expected)]
        expected.append(F.max_pool2d(expected[-1], 1, stride=2))
    assert len(outs) == 4
    for got, exp in zip(outs, expected):
        torch.testing.assert_close(got, exp, rtol=0, atol=1e-12)


@pytest.mark.parametrize('kwargs', VARIANTS, ids=str)
def test_odd_sizes_and_gradients(kwargs):
    """A 67x99 image through stride 4..32 (ceil sizes), then a loss: the
    alignment parameters of the variant get non-zero gradient."""
    torch.manual_seed(0)
    channels = [8, 16, 32, 64]
    neck = FaPN(channels, 16, 5, deform_groups=8, **kwargs)
    neck.init_weights()
    sizes = [(17, 25), (9, 13), (5, 7), (3, 4)]
    outs = neck(_feats(channels, sizes))
    assert [tuple(o.shape) for o in outs] == \
        [(2, 16, h, w) for h, w in sizes] + [(2, 16, 2, 2)]
    sum((o * torch.randn_like(o)).sum() for o in outs).backward()
    names = {
        'fam_after_fusion': '.dcn.',
        'flow': '.flow.weight',
        'deconv': '.deconv.',
    }
    key = names.get(kwargs.get('align', 'fam'), '.dcn.')
    params = {n: p for n, p in neck.named_parameters()
              if n.startswith('align_modules') and key in n}
    if kwargs.get('align') == 'none':
        params = {n: p for n, p in neck.named_parameters()
                  if n.startswith(('extra_output_convs', 'lateral_convs'))}
    assert params
    for n, p in params.items():
        assert p.grad is not None and p.grad.abs().sum() > 0, n


@pytest.mark.parametrize('toolbox', ['mmdet', 'mmseg'])
def test_fpn_mode_is_the_stock_fpn(toolbox, request):
    """lateral='conv', align='none', top_output_conv=True, nearest
    upsampling: mmdet's/mmseg's FPN, same state_dict keys, same output."""
    registry = request.getfixturevalue(f'{toolbox}_scope')
    cfg = dict(in_channels=R50, out_channels=16, num_outs=5)
    fpn = registry.build(dict(cfg, type='FPN')).eval()
    mine = FaPN(**cfg, lateral='conv', align='none', top_output_conv=True,
                upsample_cfg=dict(mode='nearest')).eval()
    assert set(mine.state_dict()) == set(fpn.state_dict())
    mine.load_state_dict(fpn.state_dict(), strict=True)
    feats = _feats(R50, [(21, 33), (11, 17), (6, 9), (3, 5)])
    with torch.no_grad():
        for a, b in zip(mine(feats), fpn(feats)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_flow_variant_starts_as_plain_fusion():
    """AlignFA's zero flows make align='flow' equal to align='none' (same
    laterals and output convs) at initialisation."""
    torch.manual_seed(0)
    channels = [8, 16, 32, 64]
    flow = FaPN(channels, 16, 4, align='flow').eval()
    flow.init_weights()
    plain = FaPN(channels, 16, 4, align='none').eval()
    plain.load_state_dict(
        {k: v for k, v in flow.state_dict().items()
         if not k.startswith('align_modules')}, strict=True)
    feats = _feats(channels, [(21, 33), (11, 17), (6, 9), (3, 5)])
    with torch.no_grad():
        for a, b in zip(flow(feats), plain(feats)):
            assert torch.equal(a, b)


def test_zero_inits_survive_a_parent_init_cfg():
    xavier = dict(type='Xavier', layer='Conv2d', distribution='uniform')
    for align in ('fam_after_fusion', 'flow'):
        neck = FaPN(R50, 16, 4, align=align, init_cfg=xavier)
        neck.init_weights()
        for m in neck.align_modules:
            zeros = [m.dcn.conv_offset.weight, m.dcn.conv_offset.bias] \
                if align != 'flow' else [m.coarse_flow.flow.weight,
                                         m.fine_flow.flow.weight]
            assert all(torch.count_nonzero(t) == 0 for t in zeros)
    neck = FaPN(R50, 16, 4, align='deconv', init_cfg=xavier)
    neck.init_weights()
    w = neck.align_modules[0].deconv.weight
    assert torch.count_nonzero(w[0, 1]) == 0  # channel-diagonal, bilinear
    torch.testing.assert_close(
        w[3, 3], torch.tensor([.25, .75, .75, .25]).outer(
            torch.tensor([.25, .75, .75, .25])))


def test_context_module_on_c5(mmseg_scope, count_params):
    channels = [8, 16, 32, 64]
    cm = dict(type='AlignCM', in_channels=64, channels=24, bin_size=3)
    neck = mmseg_scope.build(dict(type='FaPN', in_channels=channels,
                                  out_channels=16, num_outs=4,
                                  align='flow', lateral='conv',
                                  context_cfg=cm))
    assert isinstance(neck.context, AlignCM)
    assert neck.lateral_convs[-1].conv.in_channels == 48  # concat
    assert count_params(neck) == count_params(FaPN(
        [8, 16, 32, 48], 16, 4, align='flow', lateral='conv')) + \
        count_params(neck.context)
    neck.init_weights()
    assert torch.count_nonzero(neck.context.flow_head.flow.weight) == 0
    feats = _feats(channels, [(21, 33), (11, 17), (6, 9), (3, 5)])
    outs = neck(feats)
    assert [tuple(o.shape[2:]) for o in outs] == \
        [(21, 33), (11, 17), (6, 9), (3, 5)]
    sum(o.sum() for o in outs).backward()
    assert neck.context.flow_head.flow.weight.grad.abs().sum() > 0


def test_bad_switches():
    with pytest.raises(ValueError, match="unknown lateral='fpn'"):
        FaPN(R50, 16, 4, lateral='fpn')
    with pytest.raises(ValueError, match="unknown align='dcn'"):
        FaPN(R50, 16, 4, align='dcn')
    with pytest.raises(ValueError, match='extra_output_convs must be an int'
                       ' >= 0, got -1'):
        FaPN(R50, 16, 4, extra_output_convs=-1)
    with pytest.raises(ValueError, match="align='none'"):
        FaPN(R50, 16, 4, align='none', align_cfg=dict(kernel_size=4))
    with pytest.raises(ValueError, match='size/scale_factor'):
        FaPN(R50, 16, 4, upsample_cfg=dict(scale_factor=2))
    with pytest.raises(TypeError, match='context_cfg must be a dict'):
        FaPN(R50, 16, 4, context_cfg='AlignCM')
    with pytest.raises(KeyError, match="'NoSuchContext' is not registered"):
        FaPN(R50, 16, 4, context_cfg=dict(type='NoSuchContext'))
    with pytest.raises(TypeError, match='must expose an int out_channels'):
        FaPN(R50, 16, 4, context_cfg=dict(type='FeatureAlignModule',
                                          channels=2048))


# --- building blocks -------------------------------------------------------


def test_single_input_fam(count_params):
    torch.manual_seed(0)
    fam = FeatureAlignModule(256, single_input=True)
    assert count_params(fam) == 590_080 + 497_880  # no 1x1 offset conv
    fam = FeatureAlignModule(16, deform_groups=8, single_input=True).double()
    fam.init_weights()
    torch.nn.init.normal_(fam.dcn.bias)
    x = torch.randn(2, 16, 9, 13, dtype=torch.float64)
    # offsets 0, mask 0.5 at init: relu(0.5 * conv3x3(x) + b), no residual
    expected = F.relu(0.5 * F.conv2d(x, fam.dcn.weight, padding=1) +
                      fam.dcn.bias.view(1, -1, 1, 1))
    torch.testing.assert_close(fam(x), expected, rtol=0, atol=1e-12)
    # offsets come from x itself
    seen = {}

    def hook(module, args, out):
        seen['guide'] = args[0]

    fam.dcn.conv_offset.register_forward_hook(hook)
    fam(x)
    assert seen['guide'] is x
    with pytest.raises(TypeError, match='takes one map'):
        fam(x, x)
    with pytest.raises(TypeError, match='aligns one map'):
        fam.align(x, x)
    with pytest.raises(TypeError, match=r'needs \(lat, coarse\)'):
        FeatureAlignModule(16)(x)


def test_deconv_upsample(count_params):
    assert count_params(DeconvUpsample(256)) == 256 * 256 * 16 + 256
    d = DeconvUpsample(4).double()
    x = torch.randn(2, 4, 5, 7, dtype=torch.float64)
    ref = F.interpolate(x, scale_factor=2, mode='bilinear',
                        align_corners=False)
    out = d(x, (10, 14))
    # bilinear init: equal away from the one-pixel border
    torch.testing.assert_close(out[..., 1:-1, 1:-1], ref[..., 1:-1, 1:-1],
                               rtol=0, atol=1e-12)
    # odd laterals: one pixel less is the top-left crop, one more pads
    assert torch.equal(d(x, (9, 13)), out[..., :9, :13])
    big = d(x, (11, 15))
    assert tuple(big.shape[-2:]) == (11, 15)
    torch.testing.assert_close(big[..., :10, :14], out)
    with pytest.raises(ValueError, match=r'cannot upsample height 5 to 12 '
                       r'.*\[9, 11\]'):
        d(x, (12, 14))
    with pytest.raises(ValueError, match='kernel_size must be even'):
        DeconvUpsample(4, kernel_size=3)

"""The aligner protocol: every top-down fusion module is called as
``(lateral, coarse)``, zeroes its own offsets in ``init_offset``, is built
by one function from a name or a registered type, and a new aligner is one
class plus a config line."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmfapn.models import FaPN
from mmfapn.models.layers import (ALIGNERS, BaseAligner, SumFusion,
                                  build_aligner, get_aligner)
from mmfapn.models.utils import normalize_upsample_cfg, resize_to
from mmfapn.registry import register_model


def _pair(c=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(2, c, 9, 13, generator=g),
            torch.randn(2, c, 5, 7, generator=g))


@pytest.mark.parametrize('name', sorted(ALIGNERS))
def test_every_aligner_fuses_lateral_and_coarse(name):
    torch.manual_seed(0)
    aligner = build_aligner(name, 8, dict(deform_groups=2))
    assert isinstance(aligner, BaseAligner)
    lateral, coarse = _pair()
    assert aligner(lateral, coarse).shape == lateral.shape


@pytest.mark.parametrize('name', sorted(ALIGNERS))
def test_init_offset_zeroes_what_a_parent_init_changed(name):
    """After a parent-style Xavier on every conv, ``init_offset`` alone
    brings back the module's zero-offset start (the aligners with
    offsets/flows equal the offset-free fusion again)."""
    torch.manual_seed(0)
    aligner = build_aligner(name, 8, dict(deform_groups=2))
    zero = {n: p.clone() for n, p in aligner.named_parameters()
            if 'conv_offset' in n or n.endswith('flow.weight')}
    for m in aligner.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
    aligner.init_offset()
    for n, p in aligner.named_parameters():
        if n in zero:
            assert torch.count_nonzero(p) == 0, n
            assert torch.count_nonzero(zero[n]) == 0, n


def test_sum_fusion_is_fpn_fusion():
    lateral, coarse = _pair()
    up = F.interpolate(coarse, size=(9, 13), mode='nearest')
    got = SumFusion(8, upsample_cfg=dict(mode='nearest',
                                         align_corners=False))(lateral,
                                                               coarse)
    assert torch.equal(got, lateral + up)
    assert not list(SumFusion(8).parameters())


def test_shared_settings_go_only_where_they_are_taken():
    shared = dict(deform_groups=2, norm_cfg=dict(type='GN', num_groups=2),
                  upsample_cfg=dict(mode='nearest'), dcn_impl='torch',
                  conv_cfg=None)
    fam = build_aligner('fam', 8, shared)
    assert fam.dcn.deform_groups == 2 and fam.offset_fusion.with_norm
    assert fam.upsample_cfg == dict(mode='nearest')
    flow = build_aligner('flow', 8, shared)  # keeps its own BN default
    assert type(flow.coarse_flow.hidden.norm).__name__ == 'BatchNorm2d'
    # the config's own arguments win over the shared ones
    fam = build_aligner(dict(type='fam', deform_groups=4), 8, shared)
    assert fam.dcn.deform_groups == 4
    with pytest.raises(ValueError, match=r"\['kernel_size'\] are not "
                       r"arguments of SumFusion \(align='none'\)"):
        build_aligner(dict(type='none', kernel_size=3), 8)


def test_unknown_or_foreign_types_are_named():
    with pytest.raises(KeyError, match="'NoSuchAligner' is not registered"):
        get_aligner('NoSuchAligner')
    with pytest.raises(TypeError, match='is not a BaseAligner subclass'):
        get_aligner('FeatureSelectionModule')
    assert get_aligner('AlignFA') is ALIGNERS['flow']


@register_model(force=True)
class ToyGateAligner(BaseAligner):
    """A new aligner as a user writes it: ``lateral + gate * up`` with a
    learned per-channel gate, zero at the start."""

    shared_args = ('upsample_cfg', )

    def __init__(self, channels, upsample_cfg=None, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.upsample_cfg = normalize_upsample_cfg(upsample_cfg, 'Toy')
        self.gate = nn.Conv2d(channels, channels, 1)
        self.init_offset()

    def init_offset(self):
        nn.init.zeros_(self.gate.weight)
        nn.init.zeros_(self.gate.bias)

    def forward(self, lateral, coarse):
        up = resize_to(coarse, lateral.shape[-2:], self.upsample_cfg)
        return lateral + self.gate(up)


def test_a_new_aligner_is_one_class_and_a_config_line(mmdet_scope):
    """Registered in the test, chosen by ``align_cfg`` in a config: no
    change to the neck, the neck's init keeps its zero start."""
    cfg = dict(type='FaPN', in_channels=[8, 16, 32], out_channels=8,
               num_outs=3, upsample_cfg=dict(mode='nearest'),
               align_cfg=dict(type='ToyGateAligner'),
               init_cfg=dict(type='Xavier', layer='Conv2d'))
    neck = mmdet_scope.build(cfg)
    assert all(type(m) is ToyGateAligner for m in neck.align_modules)
    assert neck.align_modules[0].upsample_cfg == dict(mode='nearest')
    neck.init_weights()
    for m in neck.align_modules:
        assert torch.count_nonzero(m.gate.weight) == 0
    g = torch.Generator().manual_seed(0)
    feats = [torch.randn(1, c, s, s, generator=g)
             for c, s in ((8, 12), (16, 6), (32, 3))]
    outs = neck(feats)
    assert [o.shape[-1] for o in outs] == [12, 6, 3]
    # zero gate: the coarse map does not reach the finer outputs yet
    p4 = neck.lateral_convs[1](feats[1])
    torch.testing.assert_close(outs[1], neck.fpn_convs[1](p4))


def test_the_neck_rejects_a_module_that_is_not_an_aligner():
    with pytest.raises(TypeError, match='not a BaseAligner subclass'):
        FaPN([8, 16], 8, 2, align_cfg=dict(type='FeatureSelectionModule'))

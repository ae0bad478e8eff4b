"""tools/analysis/vis_alignment.py and the FAM recorder behind it
(mmfapn.visualization.alignment): the recorded maps are the FAM's own, the
offset summary follows the DCNv2 layout, and the tool runs on an mmseg
checkpoint written by the demo and on an mmdet FaPN detector."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[2]


def _run_tool(argv):
    """The command line as a user runs it (exit status, stdout, stderr)."""
    return subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'analysis' / 'vis_alignment.py'),
         *argv], capture_output=True, text=True, timeout=600)


class _TwoFams(nn.Module):
    """A minimal top-down path: two FAMs, coarse to fine."""

    def __init__(self, c=16):
        super().__init__()
        from mmfapn.models import FeatureAlignModule
        self.fams = nn.ModuleList(
            [FeatureAlignModule(c, deform_groups=4) for _ in range(2)])

    def forward(self, c2, c3, c4):
        p3 = self.fams[0](c3, c4)
        return self.fams[1](c2, p3)


def _randomise_offsets(module, seed=0, scale=0.05):
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if hasattr(m, 'conv_offset'):
            with torch.no_grad():
                m.conv_offset.weight.copy_(
                    torch.randn(m.conv_offset.weight.shape, generator=g) *
                    scale)
                m.conv_offset.bias.copy_(
                    torch.randn(m.conv_offset.bias.shape, generator=g))


def test_recorder_captures_the_fam_input_and_aligned_output():
    from mmfapn.visualization import AlignmentRecorder
    torch.manual_seed(0)
    net = _TwoFams().eval()
    _randomise_offsets(net)
    c2, c3, c4 = (torch.randn(2, 16, s, s + 3) for s in (20, 10, 5))
    outputs = {}
    hooks = [
        fam.register_forward_hook(
            lambda m, a, o, i=i: outputs.__setitem__(i, (a, o)))
        for i, fam in enumerate(net.fams)
    ]
    with AlignmentRecorder(net) as rec:
        net(c2, c3, c4)
    for h in hooks:
        h.remove()
    records = rec.records
    assert [r.name for r in records] == ['fams.0', 'fams.1']
    for i, r in enumerate(records):
        (lat, coarse), out = outputs[i]
        up = F.interpolate(coarse, size=lat.shape[-2:], mode='bilinear',
                           align_corners=False)
        # "before" is the bilinearly upsampled coarse map, "after" the
        # aligned map that the FAM adds to the lateral
        torch.testing.assert_close(r.before, up)
        torch.testing.assert_close(r.after + lat, out)
        assert (r.after >= 0).all()
        n, c, h, w = lat.shape
        assert r.offset.shape == (n, 2 * 4 * 9, h, w)
        assert r.mask.shape == (n, 4 * 9, h, w)
        assert r.deform_groups == 4 and r.kernel_size == (3, 3)
    # hooks are removed on exit: a later forward records nothing new
    net(c2, c3, c4)
    assert len(rec.records) == 2 and rec.records[0] is records[0]


def test_mean_displacement_follows_the_dcnv2_layout():
    """Offsets set through the offset conv's bias: channel 2*(g*K+k) is dy
    and 2*(g*K+k)+1 dx of group g, tap k; the summary is their
    mask-weighted mean over groups and taps."""
    from mmfapn.visualization import AlignmentRecorder, mean_displacement
    from mmfapn.models import FeatureAlignModule
    g, k = 2, 9
    fam = FeatureAlignModule(8, deform_groups=g).eval()
    rng = np.random.default_rng(1)
    dy, dx = rng.normal(size=(g, k)), rng.normal(size=(g, k))
    logit = rng.normal(size=(g, k))
    bias = np.zeros(3 * g * k)
    offsets = np.stack([dy, dx], -1).reshape(-1)  # (g, k, 2) flattened
    bias[:2 * g * k] = offsets
    bias[2 * g * k:] = logit.reshape(-1)
    with torch.no_grad():
        fam.dcn.conv_offset.weight.zero_()
        fam.dcn.conv_offset.bias.copy_(torch.from_numpy(bias))
    holder = nn.ModuleDict(dict(fam=fam))
    with AlignmentRecorder(holder) as rec:
        fam(torch.randn(1, 8, 6, 7), torch.randn(1, 8, 3, 4))
    (r, ) = rec.records
    m = 1 / (1 + np.exp(-logit))
    expected = np.array([(m * dy).sum(), (m * dx).sum()]) / m.sum()
    flow = mean_displacement(r)
    assert flow.shape == (6, 7, 2)
    np.testing.assert_allclose(flow, np.broadcast_to(expected, flow.shape),
                               rtol=1e-5, atol=1e-6)
    # the recorded offsets are those the DCN sampled with
    torch.testing.assert_close(
        r.offset[0, :, 0, 0], torch.from_numpy(offsets).float())


def test_recorder_rejects_a_model_without_fam():
    from mmfapn.visualization import AlignmentRecorder
    with pytest.raises(ValueError, match='Sequential has no '
                       'FeatureAlignModule'):
        AlignmentRecorder(nn.Sequential(nn.Conv2d(3, 3, 1)))


def test_reduce_channels_pca_and_mean():
    from mmfapn.visualization import reduce_channels
    h, w = 9, 13
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    pattern = (xx - w / 2).double()  # varies along x only
    loadings = torch.linspace(1, 2, 12).double()
    x = loadings[:, None, None] * pattern + 1e-3 * torch.randn(
        12, h, w, dtype=torch.float64, generator=torch.Generator()
        .manual_seed(0))
    (rgb, ) = reduce_channels([x], 'pca')
    assert rgb.shape == (h, w, 3) and rgb.dtype == np.uint8
    # first component = the pattern, positive loadings: red grows with x
    red = rgb[..., 0].astype(float)
    assert np.corrcoef(red.ravel(), pattern.numpy().ravel())[0, 1] > 0.95
    a, b = reduce_channels([x, 2 * x], 'mean')
    # each map on its own: a scaled copy looks the same
    np.testing.assert_array_equal(a, b)
    a, b = reduce_channels([x, 2 * x], 'mean', joint=True)
    assert not np.array_equal(a, b)
    with pytest.raises(ValueError, match="method must be 'pca' or 'mean'"):
        reduce_channels([x], 'tsne')
    with pytest.raises(ValueError, match=r'same C, got \[\(12, 9, 13\), '
                       r'\(3, 9, 13\)\]'):
        reduce_channels([x, x[:3]], 'pca')


def test_flow_colours():
    from mmfapn.visualization.drawing import flow_to_color
    flow = np.zeros((2, 3, 2))
    flow[0, 1] = (0, 2.0)  # dx > 0: hue 0, red
    flow[1, 2] = (1.0, 0)  # half the maximum length: half saturated
    rgb = flow_to_color(flow)
    assert (rgb[0, 0] == 255).all()  # no displacement: white
    assert tuple(rgb[0, 1]) == (255, 0, 0)
    assert rgb[1, 2].min() == pytest.approx(128, abs=2)
    with pytest.raises(ValueError, match=r'flow must be \(H, W, 2\)'):
        flow_to_color(np.zeros((2, 3)))


@pytest.mark.slow
def test_tool_on_a_demo_checkpoint(demo_run, tmp_path):
    """The mmseg FaPN checkpoint trained by the demo, on an odd-sized image
    (resized by the config's test pipeline): every FAM is shown."""
    from mmfapn.datasets import render_scene
    from mmfapn.visualization.drawing import GAP, TITLE_HEIGHT, write_png
    run = next(r for r in demo_run['report']['runs'] if r['label'] == 'FaPN')
    cfg = str(next(Path(run['work_dir']).glob('*.py')))
    image = render_scene(77, 131, num_classes=7, seed=5).image
    img_path = write_png(str(tmp_path / 'odd.png'), image)
    out = tmp_path / 'vis'
    proc = _run_tool([cfg, run['checkpoint'], img_path, '--out-dir',
                      str(out), '--reduce', 'mean'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    stats = json.loads((out / 'alignment.json').read_text())
    fams = stats['fams']
    assert [f['stride'] for f in fams] == [4, 8, 16]
    assert [f['name'] for f in fams] == [
        'neck.align_modules.0', 'neck.align_modules.1',
        'neck.align_modules.2'
    ]
    # the test pipeline resizes 77x131 to 128x218 (keep ratio, 256x128):
    # the maps cover ceil(128/s) x ceil(218/s)
    assert [f['size'] for f in fams] == [[32, 55], [16, 28], [8, 14]]
    for f in fams:
        assert 0 < f['mean_mask'] < 1 and f['mean_displacement_px'] >= 0
    from PIL import Image
    with Image.open(out / 'alignment.png') as im:
        assert im.format == 'PNG'
        assert im.size == (5 * 131 + 4 * GAP,
                           4 * (77 + TITLE_HEIGHT) + 3 * GAP)
    for name in ('fam0_s4_before', 'fam0_s4_after', 'fam2_s16_offsets',
                 'fam1_s8_arrows', 'prediction'):
        with Image.open(out / f'{name}.png') as im:
            assert im.size == (131, 77), name
    printed = proc.stdout
    assert 'neck.align_modules.0' in printed and 'wrote 15 files' in printed


_DET_CONFIG = '''
_base_ = ['mmdet::retinanet/retinanet_r18_fpn_1x_coco.py', {fragment!r}]
model = dict(backbone=dict(init_cfg=None), neck=dict(type='FaPN'))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(160, 96), keep_ratio=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor'))
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
'''


@pytest.mark.slow
def test_tool_on_an_mmdet_fapn_detector(tmp_path):
    """RetinaNet R-18 with the FaPN neck (mmdet; FAMs at C4 and C3 only,
    since RetinaNet starts at C3), random weights with non-zero offsets,
    saved as an mmengine checkpoint."""
    from mmengine.runner import save_checkpoint

    from mmfapn.apis.inference import load_model
    from mmfapn.datasets import render_scene
    from mmfapn.visualization.drawing import write_png
    cfg = tmp_path / 'retinanet_r18_fapn.py'
    cfg.write_text(_DET_CONFIG.format(
        fragment=str(REPO / 'configs' / '_base_' / 'mmfapn.py')))
    torch.manual_seed(0)
    model = load_model(str(cfg))
    _randomise_offsets(model.neck, scale=0.02)
    ckpt = str(tmp_path / 'det.pth')
    classes = list(model.dataset_meta['classes'])
    save_checkpoint(dict(state_dict=model.state_dict(),
                         meta=dict(dataset_meta=dict(classes=classes))),
                    ckpt)
    image = render_scene(90, 151, num_classes=5, seed=3).image
    img_path = write_png(str(tmp_path / 'det.png'), image)
    out = tmp_path / 'vis'
    proc = _run_tool([str(cfg), ckpt, img_path, '--out-dir', str(out),
                      '--max-width', '100'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    fams = json.loads((out / 'alignment.json').read_text())['fams']
    assert [f['stride'] for f in fams] == [8, 16]
    assert all(f['mean_displacement_px'] > 0 for f in fams)
    from PIL import Image
    with Image.open(out / 'prediction.png') as im:
        assert im.size == (100, 60)  # 151x90 scaled to 100 wide


def test_tool_errors_name_the_problem(tmp_path):
    proc = _run_tool(['no_config.py', 'no.pth', str(tmp_path / 'none.png')])
    assert proc.returncode == 2
    assert "cannot read image '" in proc.stderr
    from mmfapn.visualization.drawing import write_png
    img = write_png(str(tmp_path / 'x.png'), np.zeros((8, 8, 3), np.uint8))
    proc = _run_tool(['no_config.py', 'no.pth', img])
    assert proc.returncode == 2
    assert "config file not found: 'no_config.py'" in \
        proc.stderr

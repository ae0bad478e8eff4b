"""``import mmfapn`` and the FaPN modules work when mmcv's compiled ops are
missing (``mmcv._ext`` blocked in a subprocess), on the PyTorch path, and
give the numbers mmcv's op gives."""
import subprocess
import sys

import pytest
import torch

CHILD = r'''
import sys
sys.modules['mmcv._ext'] = None  # as if mmcv was built without ops
import warnings
warnings.simplefilter('ignore')
import torch
import mmfapn
from mmfapn.models import FaPN, FeatureAlignModule
from mmfapn.ops import (GuidedModulatedDeformConv2d, mmcv_ops_available,
                        modulated_deform_conv2d)
from mmfapn.ops.modulated_deform_conv import resolve_impl

assert not mmcv_ops_available()
assert 'mmcv.ops' not in sys.modules or sys.modules['mmcv.ops'] is None
assert resolve_impl('auto', torch.device('cuda')) == 'torch'
try:
    modulated_deform_conv2d(torch.zeros(1, 8, 4, 4), torch.zeros(1, 18, 4, 4),
                            torch.ones(1, 9, 4, 4), torch.zeros(2, 8, 3, 3),
                            None, 1, 1, 1, 1, impl='mmcv')
except RuntimeError as e:
    print('RuntimeError:', e)
torch.manual_seed(0)
neck = FaPN(in_channels=[16, 24, 32, 40], out_channels=16, num_outs=4,
            dcn_impl=sys.argv[2]).double()
for m in neck.modules():
    if isinstance(m, GuidedModulatedDeformConv2d):
        torch.nn.init.normal_(m.conv_offset.weight, std=0.3)
g = torch.Generator().manual_seed(1)
feats = [torch.randn(1, c, s, s + 3, generator=g, dtype=torch.float64,
                     requires_grad=True)
         for c, s in zip([16, 24, 32, 40], [21, 11, 6, 3])]
outs = neck(feats)
sum(o.sum() for o in outs).backward()
torch.save(dict(outs=[o.detach() for o in outs],
                grads=[f.grad for f in feats],
                keys=list(neck.state_dict())), sys.argv[1])
'''


@pytest.mark.slow
def test_fapn_runs_without_mmcv_compiled_ops(tmp_path):
    from mmfapn.models import FaPN
    from mmfapn.ops import GuidedModulatedDeformConv2d

    out_file = tmp_path / 'outs.pt'
    res = subprocess.run(
        [sys.executable, '-c', CHILD, str(out_file), 'auto'],
        capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "RuntimeError: modulated_deform_conv2d(impl='mmcv'): mmcv's " \
        'compiled ops are missing (mmcv._ext cannot be imported)' \
        in res.stdout
    child = torch.load(out_file)

    # the same neck here, on mmcv's compiled op
    torch.manual_seed(0)
    neck = FaPN(in_channels=[16, 24, 32, 40], out_channels=16, num_outs=4,
                dcn_impl='mmcv').double()
    for m in neck.modules():
        if isinstance(m, GuidedModulatedDeformConv2d):
            torch.nn.init.normal_(m.conv_offset.weight, std=0.3)
    g = torch.Generator().manual_seed(1)
    feats = [torch.randn(1, c, s, s + 3, generator=g, dtype=torch.float64,
                         requires_grad=True)
             for c, s in zip([16, 24, 32, 40], [21, 11, 6, 3])]
    outs = neck(feats)
    sum(o.sum() for o in outs).backward()
    assert child['keys'] == list(neck.state_dict())
    assert any(k.endswith('dcn.conv_offset.weight') for k in child['keys'])
    for a, b in zip(child['outs'] + child['grads'],
                    [o.detach() for o in outs] + [f.grad for f in feats]):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)

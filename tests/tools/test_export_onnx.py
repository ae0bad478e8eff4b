"""ONNX export with standard operators only (``mmfapn.deployment.
onnx_export``, the library of tools/deployment/export_onnx.py): the
deformable conv alone and the PointRend-FaPN R50 segmentor whole, run in
plain onnxruntime."""
import os.path as osp

import pytest
import torch

onnx = pytest.importorskip(
    'onnx', reason='optional extra: pip install onnx onnxruntime onnxscript')
ort = pytest.importorskip(
    'onnxruntime',
    reason='optional extra: pip install onnx onnxruntime onnxscript')

from mmfapn.ops import modulated_deform_conv2d  # noqa: E402

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
POINTREND = osp.join(
    ROOT, 'configs/seg/point_rend/'
    'pointrend_r50_fapn_8xb4-65k_cityscapes-512x1024.py')


@pytest.fixture(scope='module')
def tool():
    from mmfapn.deployment import onnx_export
    return onnx_export


class _DeformConv(torch.nn.Module):

    def __init__(self, impl):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.weight = torch.nn.Parameter(
            0.1 * torch.randn(8, 16, 3, 3, generator=g))
        self.bias = torch.nn.Parameter(torch.randn(8, generator=g))
        self.impl = impl

    def forward(self, x, offset, mask):
        return modulated_deform_conv2d(x, offset, mask, self.weight,
                                       self.bias, 2, 1, 1, 8, impl=self.impl)


@pytest.mark.parametrize('impl', ['auto', 'torch'])
def test_deform_conv_exports_to_standard_ops(tmp_path, tool, impl):
    g = torch.Generator().manual_seed(1)
    # odd sizes, stride 2, deform_groups 8, samples falling outside
    x = torch.randn(2, 16, 11, 13, generator=g)
    offset = 3 * torch.randn(2, 2 * 8 * 9, 6, 7, generator=g)
    mask = torch.rand(2, 8 * 9, 6, 7, generator=g)
    module = _DeformConv(impl).eval()
    path = str(tmp_path / 'dcn.onnx')
    with torch.no_grad():
        torch.onnx.export(module, (x, offset, mask), path,
                          input_names=['x', 'offset', 'mask'],
                          opset_version=17, dynamo=False)
        expected = module(x, offset, mask)
    model = onnx.load(path)
    onnx.checker.check_model(model)
    assert tool.custom_domain_nodes(model) == []
    ops = {n.op_type for n in model.graph.node}
    assert {'GridSample', 'MatMul'} <= ops
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    got = session.run(None, dict(x=x.numpy(), offset=offset.numpy(),
                                 mask=mask.numpy()))[0]
    torch.testing.assert_close(torch.from_numpy(got), expected, rtol=0,
                               atol=1e-5)


def test_custom_domain_nodes_are_found(tool):
    """The check the tool relies on: a node of another domain (e.g. mmcv's
    ``mmcv::MMCVModulatedDeformConv2d``) is reported, also in a subgraph."""
    from onnx import TensorProto, helper
    custom = helper.make_node('MMCVModulatedDeformConv2d', ['x'], ['y'],
                              domain='mmcv')
    inner = helper.make_graph(
        [custom], 'inner', [],
        [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1])])
    if_node = helper.make_node('If', ['c'], ['z'], then_branch=inner,
                               else_branch=inner)
    relu = helper.make_node('Relu', ['x'], ['r'])
    graph = helper.make_graph(
        [relu, if_node], 'g',
        [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1]),
         helper.make_tensor_value_info('c', TensorProto.BOOL, [])],
        [helper.make_tensor_value_info('z', TensorProto.FLOAT, [1])])
    model = helper.make_model(graph)
    assert tool.custom_domain_nodes(model) == [
        ('MMCVModulatedDeformConv2d', 'mmcv'),
        ('MMCVModulatedDeformConv2d', 'mmcv')
    ]
    assert tool.custom_domain_nodes(helper.make_model(
        helper.make_graph([relu], 'g', [], []))) == []


def test_bad_arguments(tool, tmp_path):
    with pytest.raises(SystemExit):
        tool.parse_args([POINTREND, 'x.onnx', '--shape', '0', '512'])
    with pytest.raises(SystemExit):
        tool.parse_args([POINTREND, 'x.onnx', '--shape', '256', '512',
                         '--opset', '13'])
    with pytest.raises(FileNotFoundError, match='checkpoint not found'):
        tool.build_model(POINTREND, str(tmp_path / 'missing.pth'))
    with pytest.raises(FileNotFoundError,
                       match='output directory does not exist'):
        tool.main([POINTREND, str(tmp_path / 'no' / 'x.onnx'), '--shape',
                   '64', '64'])


@pytest.mark.slow
def test_pointrend_fapn_r50_whole_model_in_onnxruntime(tmp_path, tool,
                                                        capsys):
    """The PointRend-FaPN R50 segmentor, subdivision inference included, on
    a random 1x3x256x512 input: onnxruntime within 1e-4 of PyTorch, no
    custom-domain node, the deformable convs as GridSample + MatMul."""
    out = str(tmp_path / 'pointrend_fapn.onnx')
    report = tool.run(tool.parse_args([POINTREND, out, '--shape', '256',
                                       '512']))
    assert 'OK: standard operators only' in capsys.readouterr().out
    assert report['ok']
    assert report['shapes'] == {'seg_logits': [1, 19, 256, 512]}
    assert report['max_abs_diff'] <= 1e-4
    assert report['custom_domain_nodes'] == []
    model = onnx.load(out)
    assert tool.custom_domain_nodes(model) == []
    assert all(n.domain in ('', 'ai.onnx') for n in model.graph.node)
    ops = [n.op_type for n in model.graph.node]
    # 3 FAMs -> 3 deformable convs, each one GridSample (all groups at
    # once) and one MatMul; PointRend's point sampling adds its own
    assert ops.count('GridSample') >= 3 and 'MatMul' in ops
    assert 'TopK' in ops  # the subdivision inference is in the graph


REALTIME = osp.join(
    ROOT, 'configs/seg/fapn_realtime/'
    'fapn-rt_r18_4xb4-40k_cityscapes-512x1024.py')


@pytest.mark.slow
@pytest.mark.parametrize('test_cfg', [None, dict(size_divisor=32)],
                         ids=['no-padding', 'pad-to-32'])
def test_preprocess_inside_matches_test_step(tmp_path, tool, test_cfg):
    """``--preprocess``: the file takes the uint8 BGR image as loaded (a toy
    Cityscapes image, odd 61x93) and its logits match the segmentor's own
    ``test_step`` (data preprocessor, inference, padding removed) within
    1e-4; with ``test_cfg=dict(size_divisor=32)`` the graph pads to 64x96
    and crops the logits back."""
    import cv2
    import numpy as np
    from mmseg.structures import SegDataSample

    from mmfapn.datasets import write_toy_cityscapes
    info = write_toy_cityscapes(str(tmp_path / 'city'), num_train=0,
                                num_val=1, height=61, width=93)
    image = cv2.imread(info['val'][0][0])  # BGR uint8, as mmcv loads it
    assert image.shape == (61, 93, 3) and image.dtype == np.uint8
    options = None
    if test_cfg is not None:
        options = {'model.data_preprocessor.test_cfg': test_cfg}
    torch.manual_seed(0)
    model, scope = tool.build_model(REALTIME, cfg_options=options)
    module, part = tool.wrap(model, scope, 'auto', (61, 93), preprocess=True)
    assert part == 'whole'
    assert module.preprocess.pad_shape == ((64, 96) if test_cfg else
                                           (61, 93))
    out = str(tmp_path / 'rt.onnx')
    batch = torch.from_numpy(image)[None]
    names = tool.export(module, batch, out, 17, 'torchscript', 'image')

    session = ort.InferenceSession(out, providers=['CPUExecutionProvider'])
    (inp, ) = session.get_inputs()
    assert (inp.name, inp.type, inp.shape) == ('image', 'tensor(uint8)',
                                               [1, 61, 93, 3])
    (logits, ) = session.run(names, {'image': image[None]})

    sample = SegDataSample(metainfo=dict(img_shape=(61, 93),
                                         ori_shape=(61, 93)))
    data = dict(inputs=[torch.from_numpy(image).permute(2, 0, 1)],
                data_samples=[sample])
    with torch.no_grad():
        ref = model.test_step(data)[0].seg_logits.data
    assert logits.shape == (1, 19, 61, 93) and ref.shape == (19, 61, 93)
    diff = float(np.abs(logits[0] - ref.numpy()).max())
    print(f'preprocess-inside ONNX vs test_step ({test_cfg}): max abs diff '
          f'{diff:.2e}')
    assert diff <= 1e-4
    if test_cfg is None:
        _run_the_docs_example(tmp_path, out, info['val'][0][0], logits)


def _run_the_docs_example(tmp_path, onnx_file, image_file, expected):
    """The onnxruntime example of docs/user_guides/deployment.md runs as
    written, on this file and a toy image under the example's names (the
    image is already at the file's size, so its resize is the identity)."""
    import contextlib
    import io
    import os
    import re
    import shutil

    import numpy as np
    text = open(osp.join(ROOT, 'docs', 'user_guides',
                         'deployment.md')).read()
    snippet = re.findall(r'```python\n(.*?)```', text, re.S)[0]
    assert "ort.InferenceSession('fapn_rt.onnx'" in snippet
    run_dir = tmp_path / 'docs_example'
    run_dir.mkdir()
    shutil.copy(onnx_file, run_dir / 'fapn_rt.onnx')
    shutil.copy(image_file,
                run_dir / 'frankfurt_000000_000294_leftImg8bit.png')
    cwd, scope = os.getcwd(), {}
    out = io.StringIO()
    try:
        os.chdir(run_dir)
        with contextlib.redirect_stdout(out):
            exec(compile(snippet, 'deployment.md', 'exec'), scope)
    finally:
        os.chdir(cwd)
    np.testing.assert_array_equal(scope['logits'], expected)
    assert scope['labels'].shape == expected.shape[2:]
    assert out.getvalue().startswith(f'{expected.shape[2:]} [')

"""Export a FaPN model to ONNX with standard operators only.

The library behind ``tools/deployment/export_onnx.py``::

    python tools/deployment/export_onnx.py CONFIG OUT.onnx --shape H W
        [--checkpoint PATH] [--part auto|backbone-neck|whole]
        [--preprocess] [--opset 17] [--batch 1]
        [--exporter torchscript|dynamo] [--no-verify]

Every deformable convolution is exported through mmfapn's PyTorch path
(``dcn_impl='torch'``: ``GridSample``, ``MatMul``, ``Mul``, ...), so the
file runs in plain onnxruntime: no mmcv / mmdeploy custom-op library, which
neither the official DCNv2 nor mmcv's op would avoid.

What is exported (``--part``):

* ``backbone-neck``: the neck's feature maps, as ``extract_feat`` returns
  them (outputs ``feat0``, ``feat1``, ...).
* ``whole`` (mmseg segmentors): segmentation logits (N, num_classes, H, W),
  as ``encode_decode`` computes them (for PointRend the subdivision
  inference of its point head included).
* ``auto`` (default): ``whole`` for mmseg segmentors, ``backbone-neck``
  otherwise (mmdet detectors: their post-processing is not exported).

The input (two contracts):

* default: ``input``, float32 (N, 3, H, W), already what the model's data
  preprocessor makes of an image (channel order converted, normalised by
  mean/std; padding is up to the caller).
* ``--preprocess``: ``image``, uint8 (N, H, W, 3), in the channel order
  the config's pipeline loads images (mmcv's ``LoadImageFromFile``: BGR,
  as ``cv2.imread``), after the test pipeline's resize.  The data
  preprocessor is in the graph (:class:`~mmfapn.deployment.preprocess.
  ImagePreprocessor`: BGR -> RGB, mean/std, padding to the size divisor);
  ``whole`` logits are cropped back to (H, W), as the segmentor's
  ``test_step`` returns them.

Weights are random unless ``--checkpoint`` is given (nothing is downloaded:
pretrained initialisations are not run).  SyncBN is reverted to BN.  After
the export, unless ``--no-verify``, the graph is checked by ``onnx.checker``
and for nodes outside the standard ``ai.onnx`` domain, and onnxruntime's
outputs on a random input are compared with PyTorch's; the maximum absolute
difference is printed and the exit status is 1 if it exceeds ``--atol``
(default 1e-4) or a custom-domain node was found.

Requires the optional extras ``onnx``, ``onnxruntime`` and ``onnxscript``
(``pip install -e .[onnx]``).
"""
import argparse
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import DictAction
from torch import Tensor, nn

from .preprocess import ImagePreprocessor

STANDARD_DOMAINS = ('', 'ai.onnx')
PARTS = ('auto', 'backbone-neck', 'whole')


class BackboneNeck(nn.Module):
    """``extract_feat`` of an mmdet/mmseg model as a tensor -> tuple module
    (``preprocess``: an :class:`ImagePreprocessor` run first)."""

    def __init__(self, model: nn.Module,
                 preprocess: Optional[ImagePreprocessor] = None) -> None:
        super().__init__()
        self.model = model
        self.preprocess = preprocess

    def forward(self, inputs: Tensor) -> Tuple[Tensor, ...]:
        if self.preprocess is not None:
            inputs = self.preprocess(inputs)
        return tuple(self.model.extract_feat(inputs))


class WholeSegmentor(nn.Module):
    """An mmseg segmentor's ``encode_decode``: logits at the input size.

    With ``preprocess``, the input is a uint8 image batch; the logits are
    computed on the padded tensor and cropped to the image, as mmseg's
    ``postprocess_result`` does."""

    def __init__(self, model: nn.Module, shape: Tuple[int, int],
                 preprocess: Optional[ImagePreprocessor] = None) -> None:
        super().__init__()
        self.model = model
        self.preprocess = preprocess
        self.shape = tuple(shape)
        if preprocess is None:
            self.metas = [
                dict(img_shape=shape, ori_shape=shape, pad_shape=shape)
            ]
        else:
            self.metas = [
                dict(img_shape=shape, ori_shape=shape,
                     pad_shape=preprocess.pad_shape,
                     img_padding_size=list(preprocess.padding))
            ]

    def forward(self, inputs: Tensor) -> Tensor:
        if self.preprocess is not None:
            inputs = self.preprocess(inputs)
        logits = self.model.encode_decode(inputs,
                                          self.metas * inputs.shape[0])
        if self.preprocess is not None:
            h, w = self.shape
            logits = logits[:, :, :h, :w]
        return logits


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='Export a FaPN model (backbone+neck, or a segmentor '
        'whole) to ONNX with standard operators only.')
    parser.add_argument('config', help='config file')
    parser.add_argument('out', help='output .onnx file')
    parser.add_argument('--checkpoint', help='checkpoint to load')
    parser.add_argument(
        '--shape', type=int, nargs=2, required=True, metavar=('H', 'W'),
        help='input height and width')
    parser.add_argument('--batch', type=int, default=1, help='batch size')
    parser.add_argument('--part', choices=PARTS, default='auto')
    parser.add_argument(
        '--preprocess', action='store_true',
        help='put the data preprocessor in the graph: the input is a uint8 '
        'image (N, H, W, 3) in the pipeline\'s channel order (BGR), not a '
        'normalised tensor')
    parser.add_argument('--opset', type=int, default=17,
                        help='ONNX opset (GridSample needs >= 16)')
    parser.add_argument('--exporter', choices=('torchscript', 'dynamo'),
                        default='torchscript',
                        help="torch.onnx.export's exporter")
    parser.add_argument('--atol', type=float, default=1e-4,
                        help='max abs difference onnxruntime vs PyTorch')
    parser.add_argument('--no-verify', action='store_true',
                        help='skip the onnxruntime comparison')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the random weights and input')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value (mmengine syntax)')
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    h, w = args.shape
    if h < 1 or w < 1 or args.batch < 1:
        parser.error(f'--shape and --batch must be positive, got shape '
                     f'{args.shape}, batch {args.batch}')
    if args.opset < 16:
        parser.error(f'--opset must be >= 16 (GridSample), got {args.opset}')
    return args


def build_model(config: str,
                checkpoint: str = None,
                cfg_options: Optional[dict] = None) -> Tuple[nn.Module, str]:
    """The model of ``config`` (:func:`mmfapn.apis.build_model`, PyTorch's
    default initialisation unless ``checkpoint``) in eval mode on CPU with
    every deformable conv on the PyTorch path, and its scope ('mmdet' or
    'mmseg').  Its data preprocessor is the config's (``test_step`` works
    on it)."""
    from mmfapn.apis import build_model as build_inference_model
    model = build_inference_model(config, checkpoint, cfg_options=cfg_options,
                                  init_weights=False)
    for module in model.modules():
        if hasattr(module, 'dcn_impl'):
            module.dcn_impl = 'torch'
    return model.eval(), model.mmfapn_scope


def wrap(model: nn.Module, scope: str, part: str, shape: Tuple[int, int],
         preprocess: bool = False) -> Tuple[nn.Module, str]:
    """The module to export and the part it is (``auto`` resolved)."""
    is_segmentor = scope == 'mmseg' and hasattr(model, 'encode_decode')
    if part == 'auto':
        part = 'whole' if is_segmentor else 'backbone-neck'
    pre = None
    if preprocess:
        pre = ImagePreprocessor.from_preprocessor(model.data_preprocessor,
                                                  shape)
    if part == 'whole':
        if not is_segmentor:
            raise ValueError(
                f"--part whole exports mmseg segmentors only; this is a "
                f"{type(model).__name__} ({scope}): use --part backbone-neck")
        module = WholeSegmentor(model, shape, pre)
    else:
        module = BackboneNeck(model, pre)
    # eval: torch.onnx.export restores the wrapper's mode afterwards, and a
    # wrapper left in training mode would put the model's BN in training
    return module.eval(), part


def example_input(batch: int, shape: Tuple[int, int], preprocess: bool,
                  seed: int = 0) -> Tensor:
    """A reproducible random input of the module's contract: a uint8 image
    batch (N, H, W, 3) with ``preprocess``, else float (N, 3, H, W)."""
    g = torch.Generator().manual_seed(seed)
    if preprocess:
        return torch.randint(0, 256, (batch, *shape, 3), generator=g,
                             dtype=torch.uint8)
    return torch.randn(batch, 3, *shape, generator=g)


def custom_domain_nodes(onnx_model) -> List[Tuple[str, str]]:
    """(op_type, domain) of nodes outside the standard ONNX domain, in the
    main graph and in every subgraph and local function."""
    found = []

    def visit(graph):
        for node in graph.node:
            if node.domain not in STANDARD_DOMAINS:
                found.append((node.op_type, node.domain))
            for attr in node.attribute:
                if attr.g is not None and len(attr.g.node):
                    visit(attr.g)
                for g in attr.graphs:
                    visit(g)

    visit(onnx_model.graph)
    local = {(f.domain, f.name) for f in onnx_model.functions}
    for f in onnx_model.functions:
        for node in f.node:
            if node.domain not in STANDARD_DOMAINS and \
                    (node.domain, node.op_type) not in local:
                found.append((node.op_type, node.domain))
    return found


def export(module: nn.Module, inputs: Tensor, out: str, opset: int,
           exporter: str, input_name: str = 'input') -> List[str]:
    """Write ``out``; return the output names."""
    with torch.no_grad():
        ref = module(inputs)
    n_out = len(ref) if isinstance(ref, (tuple, list)) else 1
    names = [f'feat{i}' for i in range(n_out)] if isinstance(
        ref, (tuple, list)) else ['seg_logits']
    previous = os.environ.get('MMFAPN_DCN_IMPL')
    os.environ['MMFAPN_DCN_IMPL'] = 'torch'
    try:
        with torch.no_grad():
            torch.onnx.export(
                module, (inputs, ),
                out,
                input_names=[input_name],
                output_names=names,
                opset_version=opset,
                dynamo=exporter == 'dynamo',
                external_data=False)
    finally:
        if previous is None:
            os.environ.pop('MMFAPN_DCN_IMPL')
        else:
            os.environ['MMFAPN_DCN_IMPL'] = previous
    return names


def verify(module: nn.Module, inputs: Tensor, out: str,
           names: Sequence[str],
           input_name: str = 'input') -> Dict[str, object]:
    """Check the file and compare onnxruntime with PyTorch on ``inputs``."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    model = onnx.load(out)
    onnx.checker.check_model(model)
    custom = custom_domain_nodes(model)
    op_types = sorted({n.op_type for n in model.graph.node})
    session = ort.InferenceSession(out, providers=['CPUExecutionProvider'])
    got = session.run(list(names), {input_name: inputs.numpy()})
    with torch.no_grad():
        ref = module(inputs)
    ref = list(ref) if isinstance(ref, (tuple, list)) else [ref]
    diffs = [np.abs(g - r.numpy()) for g, r in zip(got, ref)]
    return dict(
        max_abs_diff=max(float(d.max()) for d in diffs),
        per_output={n: float(d.max())
                    for n, d in zip(names, diffs)},
        # fraction of output values differing by more than 1e-4
        frac_over_1e4={n: float((d > 1e-4).mean())
                       for n, d in zip(names, diffs)},
        shapes={n: list(g.shape) for n, g in zip(names, got)},
        input_name=input_name,
        input_type=str(model.graph.input[0].type.tensor_type.elem_type),
        custom_domain_nodes=custom,
        op_types=op_types,
        num_nodes=len(model.graph.node))


def run(args: argparse.Namespace) -> Optional[Dict[str, object]]:
    """Export as ``args`` say and print a summary; return the verification
    report (None with ``--no-verify``), with ``ok`` set."""
    out_dir = osp.dirname(osp.abspath(args.out))
    if not osp.isdir(out_dir):
        raise FileNotFoundError(f'output directory does not exist: '
                                f'{out_dir!r}')
    torch.manual_seed(args.seed)  # random weights and input, reproducible
    model, scope = build_model(args.config, args.checkpoint,
                               getattr(args, 'cfg_options', None))
    preprocess = bool(getattr(args, 'preprocess', False))
    module, part = wrap(model, scope, args.part, tuple(args.shape),
                        preprocess)
    inputs = example_input(args.batch, tuple(args.shape), preprocess,
                           args.seed)
    input_name = 'image' if preprocess else 'input'
    names = export(module, inputs, args.out, args.opset, args.exporter,
                   input_name)
    kind = ('uint8 image (N, H, W, 3), BGR, preprocessing in the graph'
            if preprocess else 'normalised float32 tensor (N, 3, H, W)')
    print(f'exported {part} of {osp.basename(args.config)} '
          f'({type(model).__name__}, {scope}) for input {input_name!r} '
          f'{tuple(inputs.shape)}: {kind}, to {args.out} '
          f'(opset {args.opset})')
    if args.no_verify:
        return None
    report = verify(module, inputs, args.out, names, input_name)
    for name, shape in report['shapes'].items():
        print(f'  {name}: {shape}  max |onnxruntime - pytorch| = '
              f'{report["per_output"][name]:.3e} (values over 1e-4: '
              f'{100 * report["frac_over_1e4"][name]:.3g}%)')
    print(f'  {report["num_nodes"]} nodes; operators: '
          f'{", ".join(report["op_types"])}')
    report['ok'] = True
    if report['custom_domain_nodes']:
        print(f'  FAIL: custom-domain nodes {report["custom_domain_nodes"]}')
        report['ok'] = False
    if report['max_abs_diff'] > args.atol:
        print(f'  FAIL: max abs difference {report["max_abs_diff"]:.3e} > '
              f'{args.atol:g}')
        report['ok'] = False
    if report['ok']:
        print(f'  OK: standard operators only, onnxruntime matches PyTorch '
              f'within {args.atol:g}')
    return report


def main(argv=None) -> int:
    """The command line; returns the exit status."""
    report = run(parse_args(argv))
    return 0 if report is None or report['ok'] else 1

"""Checks that turn a missing path or a malformed annotation file into one
error naming the file.

mmdet's datasets report a missing annotation file, but a malformed one
surfaces as e.g. ``JSONDecodeError: Expecting value: line 2 column 1`` or
``KeyError: 'categories'`` with no file name, and a missing image folder
only at the first training iteration.  :class:`mmfapn.engine.DataCheckedRunner`
(``runner_type`` of every mmfapn config) calls these functions on
each dataloader and evaluator config before building it:

- :func:`check_dataset_paths` (cheap, always): ``data_root``, ``ann_file``
  and the ``data_prefix`` folders exist;
- :func:`diagnose_dataset_files` (only once building has failed, so a
  large COCO JSON is never parsed twice): the annotation files parse and,
  for COCO-format datasets and metrics, have the structure that mmdet
  reads.

Paths on remote storage (``backend_args`` set, or a ``scheme://`` path) are
left to the storage backend.
"""
import json
import os.path as osp
from typing import Iterator, List, Optional, Tuple

# keys of dataset wrappers (RepeatDataset, ConcatDataset, ...) that hold
# the wrapped dataset configs
_WRAPPED = ('dataset', 'datasets')


def _type_name(cfg: dict) -> str:
    t = cfg.get('type', '?')
    return t if isinstance(t, str) else getattr(t, '__name__', str(t))


def _is_remote(cfg: dict, *paths) -> bool:
    return cfg.get('backend_args') is not None or any(
        isinstance(p, str) and '://' in p for p in paths)


def _leaf_datasets(cfg) -> Iterator[dict]:
    """The innermost dataset configs of a (possibly wrapped) dataset cfg."""
    if not isinstance(cfg, dict):
        return
    wrapped = False
    for key in _WRAPPED:
        inner = cfg.get(key)
        if isinstance(inner, dict):
            wrapped = True
            yield from _leaf_datasets(inner)
        elif isinstance(inner, (list, tuple)):
            wrapped = True
            for item in inner:
                yield from _leaf_datasets(item)
    if not wrapped:
        yield cfg


def _join(data_root: Optional[str], path: str) -> str:
    # as mmengine's BaseDataset._join_prefix
    if data_root and not osp.isabs(path):
        return osp.join(data_root, path)
    return path


def _dataset_ann_file(cfg: dict) -> Optional[str]:
    ann_file = cfg.get('ann_file')
    if not isinstance(ann_file, str) or not ann_file:
        return None
    return _join(cfg.get('data_root'), ann_file)


def check_dataset_paths(dataset_cfg) -> None:
    """Check that a dataset config's ``data_root``, ``ann_file`` and
    ``data_prefix`` folders exist (wrappers are followed).

    Raises:
        FileNotFoundError: naming the missing path and the dataset type.
    """
    for cfg in _leaf_datasets(dataset_cfg):
        name = _type_name(cfg)
        data_root = cfg.get('data_root')
        ann_file = _dataset_ann_file(cfg)
        prefixes = cfg.get('data_prefix') or {}
        if _is_remote(cfg, data_root, ann_file, *prefixes.values()):
            continue
        if data_root and not osp.isdir(data_root):
            extra = f' (annotation file {ann_file!r})' if ann_file else ''
            raise FileNotFoundError(
                f'{name}: data_root {data_root!r} does not exist{extra}')
        if ann_file and not osp.isfile(ann_file):
            raise FileNotFoundError(
                f'{name}: annotation file {ann_file!r} does not exist')
        for key, prefix in prefixes.items():
            if not isinstance(prefix, str) or not prefix:
                continue
            folder = _join(data_root, prefix)
            if not osp.isdir(folder):
                raise FileNotFoundError(
                    f'{name}: data_prefix.{key} folder {folder!r} does not '
                    'exist')


def load_json(path: str):
    """``json.load`` with the file name in the error.

    Raises:
        ValueError: ``path`` is not valid JSON.
    """
    try:
        with open(path) as f:
            return json.load(f)
    except UnicodeDecodeError as err:
        raise ValueError(f'{path}: not a JSON text file ({err})') from None
    except json.JSONDecodeError as err:
        raise ValueError(f'{path}: malformed JSON ({err})') from None


def _require(items, what: str, keys: Tuple[str, ...], path: str) -> None:
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f'{path}: {what}[{i}] must be a JSON object, '
                             f'got {type(item).__name__}')
        missing = [k for k in keys if k not in item]
        if missing:
            raise ValueError(f'{path}: {what}[{i}] lacks {missing} '
                             f'(has {sorted(item)})')


def check_coco_json(path: str, panoptic: bool = False) -> dict:
    """Load a COCO instances (or panoptic) annotation file and check the
    structure that mmdet's ``CocoDataset`` (``CocoPanopticDataset``) and
    COCO metrics read.

    Args:
        path (str): the JSON file.
        panoptic (bool): COCO panoptic format (``segments_info`` per image).

    Returns:
        dict: the parsed file.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: naming ``path`` and the first problem found.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'annotation file {path!r} does not exist')
    content = load_json(path)
    kind = 'COCO panoptic' if panoptic else 'COCO'
    if not isinstance(content, dict):
        raise ValueError(f'{path}: a {kind} annotation file holds a JSON '
                         'object with "images" and "categories", got a '
                         f'{type(content).__name__}')
    for key in ('images', 'categories', 'annotations'):
        if key == 'annotations' and key not in content:
            continue  # image-info files (test-dev) have no annotations
        if not isinstance(content.get(key), list):
            got = type(content[key]).__name__ if key in content else 'nothing'
            raise ValueError(f'{path}: "{key}" must be a list in a {kind} '
                             f'annotation file, got {got}')
    _require(content['images'], 'images', ('id', 'file_name', 'height',
                                           'width'), path)
    _require(content['categories'], 'categories',
             ('id', 'name', 'isthing') if panoptic else ('id', 'name'), path)
    annotations = content.get('annotations', [])
    if panoptic:
        _require(annotations, 'annotations',
                 ('image_id', 'file_name', 'segments_info'), path)
        for i, ann in enumerate(annotations):
            if not isinstance(ann['segments_info'], list):
                raise ValueError(f'{path}: annotations[{i}].segments_info '
                                 'must be a list')
            _require(ann['segments_info'], f'annotations[{i}].segments_info',
                     ('id', 'category_id', 'bbox', 'area'), path)
    else:
        _require(annotations, 'annotations',
                 ('id', 'image_id', 'category_id', 'bbox', 'area'), path)
        for i, ann in enumerate(annotations):
            bbox = ann['bbox']
            if not (isinstance(bbox, list) and len(bbox) == 4):
                raise ValueError(f'{path}: annotations[{i}].bbox must be '
                                 f'[x, y, w, h], got {bbox!r}')
    return content


def _check_annotation_files(files: List[Tuple[str, str]]) -> None:
    """``files``: (path, dataset or metric type).  COCO-format types get the
    structure check, other JSON files a parse."""
    for path, type_name in files:
        is_coco = 'coco' in type_name.lower()
        if is_coco and path.endswith('.json'):
            check_coco_json(path, panoptic='panoptic' in type_name.lower())
        elif path.endswith('.json'):
            if not osp.isfile(path):
                raise FileNotFoundError(
                    f'{type_name}: annotation file {path!r} does not exist')
            load_json(path)


def diagnose_dataset_files(dataset_cfg) -> None:
    """Parse and check the annotation files of a dataset config.

    Call it after building the dataset failed: it raises the error that
    names the bad file, or returns if it finds nothing wrong.

    Raises:
        FileNotFoundError | ValueError: naming the file.
    """
    check_dataset_paths(dataset_cfg)
    files = []
    for cfg in _leaf_datasets(dataset_cfg):
        ann_file = _dataset_ann_file(cfg)
        if ann_file and not _is_remote(cfg, ann_file):
            files.append((ann_file, _type_name(cfg)))
    _check_annotation_files(files)


def _metric_cfgs(evaluator_cfg) -> Iterator[dict]:
    if isinstance(evaluator_cfg, dict):
        metrics = evaluator_cfg.get('metrics')
        if metrics is None:
            yield evaluator_cfg
        else:
            yield from _metric_cfgs(metrics)
    elif isinstance(evaluator_cfg, (list, tuple)):
        for item in evaluator_cfg:
            yield from _metric_cfgs(item)


def check_evaluator_paths(evaluator_cfg) -> None:
    """Check that the files a metric config reads (``ann_file``, panoptic
    ``seg_prefix``) exist.

    Raises:
        FileNotFoundError: naming the missing path and the metric type.
    """
    for cfg in _metric_cfgs(evaluator_cfg):
        name = _type_name(cfg)
        ann_file, seg_prefix = cfg.get('ann_file'), cfg.get('seg_prefix')
        if _is_remote(cfg, ann_file, seg_prefix):
            continue
        if isinstance(ann_file, str) and ann_file and \
                not osp.isfile(ann_file):
            raise FileNotFoundError(
                f'{name}: annotation file {ann_file!r} does not exist')
        if isinstance(seg_prefix, str) and seg_prefix and \
                not osp.isdir(seg_prefix):
            raise FileNotFoundError(
                f'{name}: seg_prefix folder {seg_prefix!r} does not exist')


def diagnose_evaluator_files(evaluator_cfg) -> None:
    """Parse and check the annotation files of metric configs; call it
    after building the evaluator failed (see
    :func:`diagnose_dataset_files`)."""
    check_evaluator_paths(evaluator_cfg)
    files = []
    for cfg in _metric_cfgs(evaluator_cfg):
        ann_file = cfg.get('ann_file')
        if isinstance(ann_file, str) and ann_file and \
                not _is_remote(cfg, ann_file):
            files.append((ann_file, _type_name(cfg)))
    _check_annotation_files(files)

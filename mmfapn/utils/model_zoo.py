"""Generate ``docs/model_zoo.md`` from the configs' ``metafile.yml`` files.

The metafiles (OpenMMLab's model-index format, read by ``mim search``) are
the one source of truth for the model zoo: the page lists the metafiles in
the order ``model-index.yml`` imports them, one table per metafile, and
copies each metafile's leading comment, which states where its results come
from (the paper's, or a measurement of this repository).  Regenerate with
``make model-zoo`` (``python tools/misc/gen_model_zoo.py``); the test
``tests/docs/test_model_zoo.py`` fails when the page is stale.

Only the standard library and PyYAML are used, so the generator runs
without torch or the OpenMMLab stack.
"""
import glob
import os.path as osp
from typing import Any, Dict, List, Optional, Tuple

import yaml

#: The page this module writes, relative to the repository root.
MODEL_ZOO_PATH = 'docs/model_zoo.md'
#: The command that regenerates it (named in the staleness test's message).
REGENERATE_COMMAND = 'make model-zoo'

# Section titles for the first folder level under configs/.
_GROUP_TITLES = {
    'det': 'Detection, instance and panoptic segmentation (mmdet)',
    'seg': 'Semantic segmentation (mmseg)',
}


def _leading_comment(text: str) -> str:
    """The ``#`` comment lines at the top of a YAML file, joined."""
    lines = []
    for line in text.splitlines():
        if not line.startswith('#'):
            break
        lines.append(line[1:].strip())
    return ' '.join(line for line in lines if line)


def _fmt_number(value: Any) -> str:
    """Integers with thousands separators, other values as written."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f'{value:,}'
    return str(value)


def _fmt_results(results: Optional[List[Dict[str, Any]]]) -> str:
    """``Results`` of one model as ``dataset: metric value, ...; ...``."""
    if not results:
        return '–'
    parts = []
    for result in results:
        metrics = ', '.join(f'{name} {_fmt_number(value)}'
                            for name, value in result['Metrics'].items())
        parts.append(f"{result['Dataset']}: {metrics}")
    return '; '.join(parts)


def _fmt_speed(entries: Optional[List[Dict[str, Any]]]) -> str:
    """An ``inference time (ms/im)`` entry with its hardware and settings."""
    if not entries:
        return '–'
    parts = []
    for entry in entries:
        details = [str(entry['hardware'])] if 'hardware' in entry else []
        if 'batch size' in entry:
            details.append(f"batch {entry['batch size']}")
        details += [
            str(entry[key]) for key in ('mode', 'resolution') if key in entry
        ]
        parts.append(
            f"{_fmt_number(entry['value'])} ms ({', '.join(details)})")
    return '; '.join(parts)


def _escape(cell: str) -> str:
    """Make a string safe inside a Markdown table cell."""
    return cell.replace('|', '\\|')


def _imported_metafiles(repo_root: str) -> List[str]:
    """Metafile paths (relative) that ``model-index.yml`` imports.

    Raises:
        FileNotFoundError: ``model-index.yml`` or an imported metafile is
            missing.
        ValueError: a ``configs/**/metafile.yml`` is not imported, so it
            would be missing from the page and from ``mim search``.
    """
    index_path = osp.join(repo_root, 'model-index.yml')
    if not osp.isfile(index_path):
        raise FileNotFoundError(f'model zoo: no model-index.yml in '
                                f'{repo_root!r}')
    with open(index_path, encoding='utf-8') as f:
        imports = (yaml.safe_load(f) or {}).get('Import') or []
    for rel in imports:
        if not osp.isfile(osp.join(repo_root, rel)):
            raise FileNotFoundError(
                f'model zoo: model-index.yml imports {rel!r}, which does '
                'not exist')
    found = sorted(
        osp.relpath(p, repo_root).replace(osp.sep, '/') for p in glob.glob(
            osp.join(repo_root, 'configs', '**', 'metafile.yml'),
            recursive=True))
    missing = [rel for rel in found if rel not in imports]
    if missing:
        raise ValueError(
            'model zoo: model-index.yml does not import '
            f'{", ".join(missing)}; add it under "Import:"')
    return list(imports)


def _table(models: List[Dict[str, Any]], link_prefix: str) -> List[str]:
    """Markdown table rows for the models of one metafile."""
    has = {
        key: any(key in (m.get('Metadata') or {}) for m in models)
        for key in ('Epochs', 'Iterations', 'inference time (ms/im)')
    }
    header = ['config', 'backbone', 'training data', 'batch']
    if has['Epochs']:
        header.append('epochs')
    if has['Iterations']:
        header.append('iterations')
    header.append('params')
    if has['inference time (ms/im)']:
        header.append('inference time')
    header.append('results')
    rows = ['| ' + ' | '.join(header) + ' |',
            '|' + '---|' * len(header)]
    for model in models:
        meta = model.get('Metadata') or {}
        arch = meta.get('Architecture') or ['–']
        data = meta.get('Training Data', '–')
        if isinstance(data, list):
            data = ', '.join(data)
        name = model['Name']
        config = model['Config']
        cells = [f'[{name}]({link_prefix}{config})', str(arch[0]), str(data),
                 _fmt_number(meta.get('Batch Size', '–'))]
        if has['Epochs']:
            cells.append(_fmt_number(meta.get('Epochs', '–')))
        if has['Iterations']:
            cells.append(_fmt_number(meta.get('Iterations', '–')))
        cells.append(_fmt_number(meta.get('Parameters', '–')))
        if has['inference time (ms/im)']:
            cells.append(_fmt_speed(meta.get('inference time (ms/im)')))
        cells.append(_fmt_results(model.get('Results')))
        if 'Weights' in model:
            cells[0] += f" ([checkpoint]({model['Weights']}))"
        rows.append('| ' + ' | '.join(_escape(c) for c in cells) + ' |')
    return rows


def _load_metafile(repo_root: str, rel: str) -> Tuple[str, Dict[str, Any]]:
    """The leading comment and the parsed content of one metafile."""
    with open(osp.join(repo_root, rel), encoding='utf-8') as f:
        text = f.read()
    content = yaml.safe_load(text) or {}
    if not content.get('Models'):
        raise ValueError(f'model zoo: {rel} has no "Models" entries')
    return _leading_comment(text), content


def generate_model_zoo(repo_root: str) -> str:
    """Render the model-zoo page from the repository's metafiles.

    Args:
        repo_root (str): The repository root (holds ``model-index.yml``).

    Returns:
        str: The Markdown text of ``docs/model_zoo.md``; links are relative
        to ``docs/``.

    Raises:
        FileNotFoundError: ``model-index.yml`` or a file it imports is
            missing.
        ValueError: a metafile is not imported by ``model-index.yml``, or
            has no models.
    """
    link_prefix = '../'
    metafiles = _imported_metafiles(repo_root)
    loaded = [(rel, *_load_metafile(repo_root, rel)) for rel in metafiles]
    n_models = sum(len(content['Models']) for _, _, content in loaded)
    n_results = sum(
        1 for _, _, content in loaded for m in content['Models']
        if m.get('Results'))
    n_weights = sum(
        1 for _, _, content in loaded for m in content['Models']
        if 'Weights' in m)

    out = [
        '# Model zoo',
        '',
        '<!-- Generated from model-index.yml and the metafile.yml files it',
        f'imports by `{REGENERATE_COMMAND}` (mmfapn/utils/model_zoo.py).',
        'Do not edit by hand: edit the metafiles and regenerate. -->',
        '',
        f'{n_models} configs in {len(loaded)} folders; {n_results} list '
        f'results, {n_weights} a checkpoint.  Where each folder\'s results '
        'come from is stated above its table (copied from its metafile); '
        'the folder READMEs have the details.  *params* are the parameters '
        'of the model the config builds; *backbone* is the first '
        '`Architecture` entry of the metafile.',
        '',
        f'Regenerate after editing a metafile: `{REGENERATE_COMMAND}`.',
        '',
    ]
    groups: Dict[str, List[Tuple[str, str, Dict[str, Any]]]] = {}
    for rel, comment, content in loaded:
        parts = rel.split('/')
        group = parts[1] if len(parts) > 2 else parts[0]
        groups.setdefault(group, []).append((rel, comment, content))
    for group, entries in groups.items():
        out += [f'## {_GROUP_TITLES.get(group, group)}', '']
        for rel, comment, content in entries:
            folder = osp.dirname(rel)
            collections = content.get('Collections') or []
            names = ', '.join(c['Name'] for c in collections) or folder
            readme = next((c['README'] for c in collections
                           if c.get('README')), None)
            out.append(f'### `{folder}/`: {names}')
            out.append('')
            if readme:
                out.append(f'Folder README: [{readme}]({link_prefix}{readme})'
                           f'; metafile: [{rel}]({link_prefix}{rel}).')
            else:
                out.append(f'Metafile: [{rel}]({link_prefix}{rel}).')
            out.append('')
            if comment:
                out += [f'> {comment}', '']
            out += _table(content['Models'], link_prefix)
            out.append('')
    return '\n'.join(out).rstrip('\n') + '\n'


def model_zoo_is_current(repo_root: str) -> bool:
    """Whether ``docs/model_zoo.md`` equals what the metafiles generate.

    Args:
        repo_root (str): The repository root.

    Returns:
        bool: True if the file exists and is up to date.
    """
    path = osp.join(repo_root, MODEL_ZOO_PATH)
    if not osp.isfile(path):
        return False
    with open(path, encoding='utf-8') as f:
        return f.read() == generate_model_zoo(repo_root)


def write_model_zoo(repo_root: str) -> str:
    """Write ``docs/model_zoo.md`` and return its path.

    Args:
        repo_root (str): The repository root.

    Returns:
        str: The path written.
    """
    path = osp.join(repo_root, MODEL_ZOO_PATH)
    text = generate_model_zoo(repo_root)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
    return path

"""docs/model_zoo.md is generated from the metafiles and must be current."""
import os.path as osp
import shutil

import pytest

from mmfapn.utils.model_zoo import (MODEL_ZOO_PATH, REGENERATE_COMMAND,
                                    generate_model_zoo, model_zoo_is_current)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_model_zoo_is_not_stale():
    """The committed page equals what the metafiles generate."""
    assert model_zoo_is_current(REPO), (
        f'{MODEL_ZOO_PATH} is stale (a metafile.yml or model-index.yml '
        f'changed): regenerate it with `{REGENERATE_COMMAND}` '
        '(python tools/misc/gen_model_zoo.py) and commit the result')


def test_model_zoo_lists_every_config_of_every_metafile():
    """Each model of each imported metafile has exactly one row, linking to
    its config file."""
    import yaml
    index = yaml.safe_load(open(osp.join(REPO, 'model-index.yml')))
    text = generate_model_zoo(REPO)
    configs = [
        m['Config'] for rel in index['Import']
        for m in yaml.safe_load(open(osp.join(REPO, rel)))['Models']
    ]
    assert len(configs) == len(set(configs))
    for config in configs:
        assert text.count(f'](../{config})') == 1, config
    rows = [line for line in text.splitlines() if line.startswith('| [')]
    assert len(rows) == len(configs)


@pytest.fixture
def repo_copy(tmp_path):
    """model-index.yml and the metafiles in a scratch repository."""
    shutil.copy(osp.join(REPO, 'model-index.yml'), tmp_path)
    shutil.copytree(
        osp.join(REPO, 'configs'),
        tmp_path / 'configs',
        ignore=lambda d, names: [n for n in names if n.endswith('.py')])
    (tmp_path / 'docs').mkdir()
    (tmp_path / 'docs' / 'model_zoo.md').write_text(generate_model_zoo(REPO))
    return tmp_path


def test_a_changed_metafile_makes_the_page_stale(repo_copy):
    """Editing one metric in one metafile is detected."""
    assert model_zoo_is_current(str(repo_copy))
    meta = repo_copy / 'configs/det/faster_rcnn/metafile.yml'
    meta.write_text(meta.read_text().replace('box AP: 39.2', 'box AP: 39.3'))
    assert not model_zoo_is_current(str(repo_copy))
    assert 'box AP 39.3' in generate_model_zoo(str(repo_copy))


def test_a_metafile_missing_from_the_index_is_an_error(repo_copy):
    """A folder whose metafile model-index.yml does not import would vanish
    from the page and from `mim search`: the generator names it."""
    index = repo_copy / 'model-index.yml'
    index.write_text(index.read_text().replace(
        '- configs/det/retinanet/metafile.yml\n', ''))
    with pytest.raises(ValueError, match='does not import '
                       'configs/det/retinanet/metafile.yml'):
        generate_model_zoo(str(repo_copy))

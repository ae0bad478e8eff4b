"""README.md fits on a page and leads into docs/ (issue 18)."""
import os.path as osp
import re

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
README = open(osp.join(REPO, 'README.md'), encoding='utf-8').read()


def test_readme_is_at_most_250_lines():
    assert len(README.splitlines()) <= 250, (
        f'README.md has {len(README.splitlines())} lines (at most 250): '
        'move the details into docs/')


def test_readme_links_every_docs_page():
    """The pages a new user looks for are one click away."""
    pages = [
        'docs/get_started.md', 'docs/model_zoo.md', 'docs/speed.md',
        'docs/reliability.md', 'docs/faq.md', 'docs/demo.md',
        'docs/user_guides/train_test.md', 'docs/user_guides/inference.md',
        'docs/user_guides/fapn_in_your_config.md',
        'docs/user_guides/ablations.md', 'docs/user_guides/analysis_tools.md',
        'docs/user_guides/deployment.md',
        'docs/user_guides/checkpoint_conversion.md'
    ]
    linked = set(re.findall(r'\]\(([^)#\s]+)', README))
    assert [p for p in pages if p not in linked] == []


def test_readme_names_the_stock_inference_apis():
    for api in ('MMSegInferencer', 'DetInferencer', 'init_model',
                'mim train', 'mim test', 'make demo', 'make test'):
        assert api in README, api

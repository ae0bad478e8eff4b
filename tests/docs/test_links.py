"""Every relative link and ``#anchor`` in README.md, docs/ and the config
folders' READMEs resolves, and every config or tool path named in a command
block exists.

Anchors are GitHub's heading slugs: the heading's rendered text in lower
case, every character other than a letter, digit, space, ``-`` or ``_``
removed, spaces turned into ``-``; a repeated slug gets ``-1``, ``-2``, ...
"""
import glob
import itertools
import os.path as osp
import re
from typing import Dict, List, Set, Tuple

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

FENCE = re.compile(r'^\s*(```+|~~~+)\s*([\w+-]*)')
# [text](target) and ![alt](target); the text may hold `code` or brackets
# one level deep; the target ends at whitespace or ')'.
LINK = re.compile(r'!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?'
                  r'(?:\s+"[^"]*")?\s*\)')
HTML_LINK = re.compile(r'<(?:a|img)\s[^>]*?(?:href|src)="([^"]+)"')
CODE_SPAN = re.compile(r'(`+)(.+?)\1')
HEADING = re.compile(r'^(#{1,6})\s+(.*?)\s*#*\s*$')
# a path under configs/ or tools/ that starts a word of a command line
COMMAND_PATH = re.compile(r'(?<![\w./$:-])((?:configs|tools)/[\w./{},*-]*)')
COMMAND_LANGS = {'bash', 'sh', 'shell', 'console', 'zsh', 'python', 'py', ''}


def markdown_files(root: str) -> List[str]:
    """README.md, docs/**/*.md and configs/**/README.md under root."""
    files = [osp.join(root, 'README.md')]
    files += glob.glob(osp.join(root, 'docs', '**', '*.md'), recursive=True)
    files += glob.glob(
        osp.join(root, 'configs', '**', 'README.md'), recursive=True)
    return sorted(f for f in files if osp.isfile(f))


def split_blocks(text: str) -> Tuple[List[Tuple[int, str]], List[
        Tuple[int, str, str]]]:
    """Prose lines (number, text) and fenced-code lines (number, language,
    text) of a Markdown document."""
    prose, code = [], []
    fence, lang = None, ''
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line)
        if fence is None and match:
            fence, lang = match.group(1), match.group(2).lower()
        elif fence is not None and line.strip().startswith(fence) and \
                not line.strip()[len(fence):].strip():
            fence = None
        elif fence is not None:
            code.append((number, lang, line))
        else:
            prose.append((number, line))
    return prose, code


def heading_text(raw: str) -> str:
    """A heading's rendered text: links become their text, code spans
    their content, emphasis markers and HTML tags go."""
    text = re.sub(r'!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\([^)]*\)', r'\1', raw)
    out, last = [], 0
    for match in CODE_SPAN.finditer(text):  # code is literal
        out.append(_strip_emphasis(text[last:match.start()]))
        out.append(match.group(2).strip())
        last = match.end()
    out.append(_strip_emphasis(text[last:]))
    return ''.join(out)


def _strip_emphasis(text: str) -> str:
    """Prose without HTML tags and emphasis markers."""
    text = re.sub(r'<[^>]+>', '', text)
    return re.sub(r'(\*\*|__|(?<!\w)[*_]|[*_](?!\w))', '', text)


def slugify(text: str) -> str:
    """GitHub's anchor for a heading of this rendered text."""
    kept = ''.join(ch for ch in text.lower()
                   if ch.isalnum() or ch in ' -_')
    return kept.replace(' ', '-')


def anchors(path: str, cache: Dict[str, Set[str]]) -> Set[str]:
    """Every heading anchor of a Markdown file, duplicates numbered."""
    if path not in cache:
        with open(path, encoding='utf-8') as f:
            prose, _ = split_blocks(f.read())
        seen: Dict[str, int] = {}
        found = set()
        for _, line in prose:
            match = HEADING.match(line)
            if not match:
                continue
            slug = slugify(heading_text(match.group(2)))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            found.add(slug if count == 0 else f'{slug}-{count}')
        # explicit HTML anchors: <a name="x"> / id="x"
        with open(path, encoding='utf-8') as f:
            found |= set(re.findall(r'<a\s+(?:name|id)="([^"]+)"', f.read()))
        cache[path] = found
    return cache[path]


def link_errors(path: str, root: str, cache: Dict[str, Set[str]]) -> List[str]:
    """Broken relative links and anchors of one Markdown file."""
    with open(path, encoding='utf-8') as f:
        prose, _ = split_blocks(f.read())
    rel = osp.relpath(path, root)
    errors = []
    for number, line in prose:
        line = CODE_SPAN.sub('code', line)  # `[x](y)` in code is no link
        for target in LINK.findall(line) + HTML_LINK.findall(line):
            if re.match(r'^[a-zA-Z][\w+.-]*:', target):  # http:, mailto:
                continue
            file_part, _, anchor = target.partition('#')
            dest = osp.normpath(osp.join(osp.dirname(path), file_part)) \
                if file_part else path
            where = f'{rel}:{number}: ({target})'
            if not osp.exists(dest):
                errors.append(f'{where} {osp.relpath(dest, root)} does not '
                              'exist')
            elif not osp.abspath(dest).startswith(osp.abspath(root) + osp.sep):
                errors.append(f'{where} points outside the repository')
            elif anchor:
                if not dest.endswith('.md') or osp.isdir(dest):
                    errors.append(f'{where} an anchor into a file that is '
                                  'not Markdown')
                elif anchor not in anchors(dest, cache):
                    errors.append(f'{where} no heading with anchor '
                                  f'#{anchor} in {osp.relpath(dest, root)}')
    return errors


def expand_braces(word: str) -> List[str]:
    """Shell brace expansion of one word: a{b,c}d -> abd, acd."""
    parts = re.split(r'(\{[^{}]*,[^{}]*\})', word)
    options = [p[1:-1].split(',') if p.startswith('{') else [p]
               for p in parts]
    return [''.join(combo) for combo in itertools.product(*options)]


def command_path_errors(path: str, root: str) -> List[str]:
    """configs/... and tools/... paths in shell, Python and plain code
    blocks that do not exist (brace lists expanded; a glob must match)."""
    with open(path, encoding='utf-8') as f:
        _, code = split_blocks(f.read())
    rel = osp.relpath(path, root)
    errors = []
    for number, lang, line in code:
        if lang not in COMMAND_LANGS:
            continue
        line = line.split(' #', 1)[0]  # comments are prose
        for word in COMMAND_PATH.findall(line):
            word = word.rstrip('.,;:')
            for candidate in expand_braces(word):
                hits = glob.glob(osp.join(root, candidate))
                if not hits:
                    errors.append(f'{rel}:{number}: {candidate} does not '
                                  'exist')
    return errors


def test_every_relative_link_and_anchor_resolves():
    files = markdown_files(REPO)
    assert osp.join(REPO, 'README.md') in files
    assert any('/docs/' in f for f in files)
    assert any('/configs/' in f for f in files)
    cache: Dict[str, Set[str]] = {}
    errors = [e for f in files for e in link_errors(f, REPO, cache)]
    assert not errors, 'broken links:\n' + '\n'.join(errors)


def test_every_path_in_a_command_block_exists():
    files = markdown_files(REPO)
    named = sum(
        len(COMMAND_PATH.findall(line)) for f in files
        for _, lang, line in split_blocks(open(f, encoding='utf-8').read())[1]
        if lang in COMMAND_LANGS)
    assert named > 50  # the check sees the commands (97 paths when written)
    errors = [e for f in files for e in command_path_errors(f, REPO)]
    assert not errors, 'missing paths in commands:\n' + '\n'.join(errors)


@pytest.mark.parametrize('heading,slug', [
    ('Two commands', 'two-commands'),
    ('`make demo`', 'make-demo'),
    ('MaskFormer + FaPN', 'maskformer--fapn'),
    ('Detection and instance/panoptic segmentation (mmdet)',
     'detection-and-instancepanoptic-segmentation-mmdet'),
    ("Reproducing the paper's numbers", 'reproducing-the-papers-numbers'),
    ('Speed (`tools/analysis/benchmark.py`)',
     'speed-toolsanalysisbenchmarkpy'),
    ('[Linked](x.md) **bold** heading', 'linked-bold-heading'),
    ('snake_case stays', 'snake_case-stays'),
    ('Rate: `configs/_base_/lr.py`', 'rate-configs_base_lrpy'),
    ('*Emphasis* and _this_', 'emphasis-and-this'),
])
def test_slugs_follow_github(heading, slug):
    assert slugify(heading_text(heading)) == slug


def test_the_checks_find_broken_links_anchors_and_paths(tmp_path):
    """A scratch repository with one of each fault: every one is reported,
    and nothing that resolves is."""
    (tmp_path / 'docs').mkdir()
    (tmp_path / 'tools').mkdir()
    (tmp_path / 'tools' / 'train.py').write_text('')
    (tmp_path / 'docs' / 'guide.md').write_text(
        '# Guide\n\n## Two words\n\n## Two words\n\n```bash\n# Not a title\n'
        'python tools/train.py x\npython tools/tset.py x\n```\n')
    (tmp_path / 'README.md').write_text(
        '# Top\n\n[ok](docs/guide.md#two-words-1) [ok2](#top) '
        '[site](https://example.org/x#y)\n'
        '[gone](docs/missing.md) [bad anchor](docs/guide.md#not-a-title)\n'
        '`[not a link](nowhere.md)` [self](#nowhere)\n')
    cache: Dict[str, Set[str]] = {}
    errors = [e for f in markdown_files(str(tmp_path))
              for e in link_errors(f, str(tmp_path), cache)]
    assert len(errors) == 3, errors
    assert 'docs/missing.md does not exist' in errors[0]
    assert 'no heading with anchor #not-a-title' in errors[1]
    assert '#nowhere' in errors[2]
    paths = command_path_errors(str(tmp_path / 'docs' / 'guide.md'),
                                str(tmp_path))
    assert paths == ['docs/guide.md:10: tools/tset.py does not exist']


def test_brace_lists_and_globs_in_commands():
    assert expand_braces('tools/data/make_{coco,ade}_toy.py') == [
        'tools/data/make_coco_toy.py', 'tools/data/make_ade_toy.py'
    ]
    assert expand_braces('configs/a.py') == ['configs/a.py']

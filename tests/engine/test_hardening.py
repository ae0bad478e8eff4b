"""``import mmfapn`` only registers; the checkpoint hardening is installed
by loading an mmfapn config, by its runner, by ``tools/train.py`` /
``tools/test.py`` and by ``mmfapn.install_runtime_hardening()``.

Each case runs in a fresh interpreter: the hardening is process-wide, and
this test process has it installed by other tests already.
"""
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / 'configs'
FRAGMENT = CONFIGS / '_base_' / 'mmfapn.py'
HARDEN = 'mmfapn.engine.harden'

# What the hardening replaces, keyed by name: every entry of mmengine's
# CheckpointLoader schemes and file backend tables, every attribute of
# Runner, CheckpointLoader and mmengine's checkpoint and fileio modules,
# torch.load/save and torch's weights-only allowlist.  ``changed(a, b)``
# lists the names whose object is not the same one.
_SNAPSHOT = r'''
import json, runpy, sys
import torch
import mmengine.fileio.io as fileio
import mmengine.runner.checkpoint as checkpoint
from mmengine.fileio.backends import registry_utils
from mmengine.runner import Runner
from mmengine.runner.checkpoint import CheckpointLoader


def snapshot():
    objs = {'torch.load': torch.load, 'torch.save': torch.save}
    for name, table in [('schemes', CheckpointLoader._schemes),
                        ('backends', registry_utils.backends),
                        ('prefixes', registry_utils.prefix_to_backends)]:
        for key, value in table.items():
            objs[f'{name}[{key!r}]'] = value
    for owner, space in [('Runner', vars(Runner)),
                         ('CheckpointLoader', vars(CheckpointLoader)),
                         ('checkpoint', vars(checkpoint)),
                         ('fileio', vars(fileio))]:
        for key, value in space.items():
            if key != '_schemes':  # its entries are above
                objs[f'{owner}.{key}'] = value
    allowlist = torch.serialization.get_safe_globals()
    return objs, allowlist


def changed(a, b):
    (objs_a, safe_a), (objs_b, safe_b) = a, b
    names = sorted(k for k in objs_a.keys() | objs_b.keys()
                   if objs_a.get(k) is not objs_b.get(k))
    if len(safe_a) != len(safe_b) or any(
            x is not y for x, y in zip(safe_a, safe_b)):
        names.append('torch safe globals')
    return names


def installed():
    from mmfapn.engine import runtime_hardening_installed
    return runtime_hardening_installed()


def run_tool(path, *argv):
    """Run a tool as ``python path argv``; its exit message."""
    sys.argv = [path, *argv]
    try:
        runpy.run_path(path, run_name='__main__')
    except SystemExit as e:
        return str(e)


report = {}
'''

# the objects install_runtime_hardening replaces (or extends)
HARDENED = [
    'Runner._init_model_weights', "backends['local']", "prefixes['']",
    "schemes['']", 'torch safe globals'
]


def _run(body: str, *args: str) -> dict:
    code = _SNAPSHOT + body + '\nprint(json.dumps(report))\n'
    proc = subprocess.run([sys.executable, '-c', code, *args],
                          capture_output=True, text=True, timeout=600,
                          cwd=str(REPO))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_import_changes_nothing_and_the_call_installs_once():
    report = _run('''
before = snapshot()
import mmfapn
imported = snapshot()
report['import'] = changed(before, imported)
report['installed_by_import'] = installed()
from mmdet.registry import MODELS
report['registered'] = MODELS.get('FaPN') is not None
mmfapn.install_runtime_hardening()
once = snapshot()
report['install'] = changed(imported, once)
report['installed'] = installed()
mmfapn.install_runtime_hardening()
report['again'] = changed(once, snapshot())
''')
    assert report == {
        'import': [],  # the same objects before and after `import mmfapn`
        'installed_by_import': False,
        'registered': True,
        'install': HARDENED,
        'installed': True,
        'again': [],  # idempotent: nothing replaced or wrapped twice
    }


@pytest.mark.parametrize('config', [
    FRAGMENT,
    CONFIGS / 'det' / 'mask_rcnn' / 'mask-rcnn_r50_fapn_1x_coco.py',
], ids=['fragment', 'mask-rcnn'])
def test_loading_a_config_installs(config):
    report = _run('''
import mmfapn
from mmengine.config import Config
before = snapshot()
report['before'] = installed()
Config.fromfile(sys.argv[1])
report['after'] = installed()
report['changed'] = changed(before, snapshot())
''', str(config))
    assert report == dict(before=False, after=True, changed=HARDENED)


def _assignments(path: Path) -> set:
    tree = ast.parse(path.read_text())
    return {
        t.id
        for node in tree.body if isinstance(node, ast.Assign)
        for t in node.targets if isinstance(t, ast.Name)
    }


def test_every_config_inherits_the_hardening_and_the_runner():
    """Only the shared fragment sets ``custom_imports`` and
    ``runner_type`` (model configs change models only), and every shipped
    config inherits it: its merged config names the hardening module and
    DataCheckedRunner."""
    from mmengine.config import Config
    files = sorted(CONFIGS.rglob('*.py'))
    setters = [
        str(p.relative_to(CONFIGS)) for p in files
        if _assignments(p) & {'custom_imports', 'runner_type'}
    ]
    assert setters == ['_base_/mmfapn.py']
    configs = [p for p in files if '_base_' not in p.parts]
    assert len(configs) > 40
    for path in configs:
        cfg = Config.fromfile(str(path), import_custom_modules=False)
        name = str(path.relative_to(CONFIGS))
        assert cfg.custom_imports == dict(
            imports=['mmfapn', HARDEN], allow_failed_imports=False), name
        assert cfg.runner_type == 'DataCheckedRunner', name


def test_runner_installs_when_custom_imports_was_replaced(
        tiny_fapn_seg_config, tmp_path):
    """A child config that sets its own ``custom_imports`` without the
    hardening module: loading it installs nothing, building its runner
    (the fragment's runner_type, as mim train does) installs it."""
    child = tmp_path / 'child.py'
    child.write_text(f'_base_ = [{tiny_fapn_seg_config!r}]\n'
                     "custom_imports = dict(imports=['mmfapn'])\n")
    report = _run('''
from mmengine.config import Config
from mmengine.registry import RUNNERS
cfg = Config.fromfile(sys.argv[1])
cfg.work_dir = sys.argv[2]
report['loaded'] = installed()
runner = RUNNERS.build(cfg)
report['runner'] = type(runner).__name__
report['built'] = installed()
''', str(child), str(tmp_path / 'work'))
    assert report == dict(loaded=False, runner='DataCheckedRunner',
                          built=True)


@pytest.mark.parametrize('tool, argv, message', [
    ('train.py', ['no_such_config.py'],
     "train.py: error: config file not found: 'no_such_config.py'"),
    ('test.py', ['no_such_config.py', 'no_such.pth'],
     "test.py: error: checkpoint file not found: 'no_such.pth'"),
], ids=['train', 'test'])
def test_tools_install(tool, argv, message):
    """The tools install the hardening before reading anything (here a
    config that does not exist, so no custom_imports is involved)."""
    report = _run('''
import mmfapn
before = snapshot()
report['exit'] = run_tool(*sys.argv[1:])
report['installed'] = installed()
report['changed'] = changed(before, snapshot())
''', str(REPO / 'tools' / tool), *argv)
    assert report == dict(exit=message, installed=True, changed=HARDENED)

"""The installed environment is the one `make setup` promises."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _pins():
    pins = {}
    for line in (ROOT / 'requirements.txt').read_text().splitlines():
        line = line.split('#')[0].strip()
        if '==' in line:
            name, version = line.split('==')
            pins[name] = version
    return pins


def test_pinned_versions_are_installed():
    from importlib.metadata import version
    pins = _pins()
    for name in ('mmcv', 'mmengine', 'mmdet', 'mmsegmentation', 'openmim'):
        assert version(name) == pins[name], name
    import setuptools
    major = int(setuptools.__version__.split('.')[0])
    assert 77 <= major < 82
    import torch
    assert torch.__version__.split('+')[0] == '2.13.0'


def test_stack_imports_with_compiled_ops():
    import panopticapi  # noqa: F401
    import pycocotools  # noqa: F401
    from mmcv.ops import ModulatedDeformConv2d  # noqa: F401
    import mmcv._ext  # noqa: F401
    import pkg_resources  # noqa: F401  (mmdet:: config inheritance, mim)


def test_mim_cli_is_installed():
    mim = Path(sys.executable).parent / 'mim'
    res = subprocess.run([str(mim), '--version'], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert '0.3.9' in res.stdout


def test_mmfapn_is_installed_editable_from_this_checkout():
    import mmfapn
    assert Path(mmfapn.__file__).resolve().parent == ROOT / 'mmfapn'


@pytest.mark.skipif(not (ROOT / '.venv').is_dir(), reason='no .venv')
def test_second_setup_is_a_no_op():
    """`make setup` is idempotent: with the stamp in place it returns
    without touching pip."""
    env = dict(os.environ, PIP_NO_INDEX='1')  # no registry needed
    for _ in range(2):  # the first call refreshes a stale stamp, if any
        res = subprocess.run(['bash', str(ROOT / 'tools/setup_env.sh')],
                             capture_output=True, text=True, timeout=600,
                             env=env)
        assert res.returncode == 0, res.stderr
    assert 'environment up to date' in res.stdout


def test_setup_check_fails_loudly_without_compiled_ops(tmp_path):
    """`tools/setup_env.sh --check` names the missing ops and the remedy;
    it checks the environment named by VENV= and says so."""
    venv = dict(os.environ, VENV=sys.prefix)  # this interpreter's venv
    ok = subprocess.run(['bash', str(ROOT / 'tools/setup_env.sh'), '--check'],
                        capture_output=True, text=True, timeout=300,
                        env=venv)
    assert ok.returncode == 0, ok.stderr
    assert '(ops ok)' in ok.stdout
    assert f'[setup] checking {sys.prefix}/bin/python (VENV={sys.prefix})' \
        in ok.stdout
    assert '[setup] torchvision: ' in ok.stdout
    # simulate an mmcv built without ops: mmcv._ext cannot be imported
    (tmp_path / 'sitecustomize.py').write_text(
        "import sys\nsys.modules['mmcv._ext'] = None\n")
    env = dict(venv, PYTHONPATH=str(tmp_path))
    bad = subprocess.run(['bash', str(ROOT / 'tools/setup_env.sh'), '--check'],
                         capture_output=True, text=True, timeout=300, env=env)
    assert bad.returncode != 0
    assert 'compiled ops are missing' in bad.stderr
    assert 'mmcv._ext' in bad.stderr and 'rerun' in bad.stderr


def test_setup_check_defaults_to_the_active_interpreter(tmp_path):
    """Without VENV=, --check checks the active virtual environment
    (VIRTUAL_ENV), else python3 on PATH, and names it; here one without
    mmcv, which fails at once with the remedy."""
    fake = tmp_path / 'other-venv'
    (fake / 'bin').mkdir(parents=True)
    (fake / 'bin' / 'python').write_text(
        '#!/bin/sh\n'
        'echo "ModuleNotFoundError: No module named mmcv" >&2; exit 1\n')
    (fake / 'bin' / 'python').chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != 'VENV'}
    env['VIRTUAL_ENV'] = str(fake)
    res = subprocess.run(['bash', str(ROOT / 'tools/setup_env.sh'),
                          '--check'], capture_output=True, text=True,
                         timeout=120, env=env)
    assert res.returncode != 0
    assert (f'[setup] checking {fake}/bin/python (the active virtual '
            f'environment, VIRTUAL_ENV={fake})') in res.stdout
    assert f'mmcv is not installed for {fake}/bin/python' in res.stderr
    assert "run 'make setup'" in res.stderr
    env.pop('VIRTUAL_ENV')
    env['PYTHON'] = str(fake / 'bin' / 'python')
    res = subprocess.run(['bash', str(ROOT / 'tools/setup_env.sh'),
                          '--check'], capture_output=True, text=True,
                         timeout=120, env=env)
    assert res.returncode != 0
    assert (f'[setup] checking {fake}/bin/python ({fake}/bin/python on '
            'PATH; no virtual environment is active') in res.stdout

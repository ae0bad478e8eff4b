"""The demo's configs (and the detectron2 converter's defaults) come with
the package, as ``mmfapn/.mim/configs``: in the checkout that folder is the
link to ``configs/``; a wheel built from the checkout carries the files, and
mmfapn imported from that wheel, in a folder far from the repository, finds
and loads them."""
import os
import os.path as osp
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO_FAPN = 'seg/demo/sem-fpn_r18_fapn_toycity-demo.py'


def test_checkout_ships_configs_through_the_link():
    from mmfapn.demo.pipeline import FAPN_CONFIG, FPN_CONFIG
    from mmfapn.utils.config_files import configs_root, display_path
    assert Path(configs_root()).resolve() == (REPO / 'configs').resolve()
    assert osp.isfile(FPN_CONFIG) and osp.isfile(FAPN_CONFIG)
    assert display_path(FAPN_CONFIG) == f'configs/{DEMO_FAPN}'
    assert display_path('/elsewhere/my_config.py') == '/elsewhere/my_config.py'


_INSTALLED = '''
import os.path as osp, sys
import mmfapn
site = sys.argv[1]
assert mmfapn.__file__.startswith(site), mmfapn.__file__
from mmengine import Config
from mmfapn.demo.pipeline import FAPN_CONFIG, DemoOptions
from mmfapn.utils.d2_convert import default_config
DemoOptions().check()  # both demo configs exist
cfg = Config.fromfile(FAPN_CONFIG)
print('demo config', FAPN_CONFIG, cfg.model.neck.type)
print('d2 config', default_config('faster_rcnn', 50))
'''


@pytest.mark.slow  # builds a wheel (about 20 s)
def test_installed_wheel_runs_the_demo_config_lookup(tmp_path):
    src = tmp_path / 'src'
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc')
    shutil.copytree(REPO / 'mmfapn', src / 'mmfapn', symlinks=True,
                    ignore=ignore)
    shutil.copytree(REPO / 'configs', src / 'configs', ignore=ignore)
    for name in ('setup.cfg', 'pyproject.toml', 'README.md'):
        shutil.copy(REPO / name, src / name)
    wheels = tmp_path / 'wheels'
    subprocess.run(
        [sys.executable, '-m', 'pip', 'wheel', '--no-deps',
         '--no-build-isolation', '--quiet', '-w', str(wheels), str(src)],
        check=True, capture_output=True, text=True, timeout=600)
    wheel, = wheels.glob('mmfapn-*.whl')
    site = tmp_path / 'site'
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        z.extractall(site)
    shipped = {n for n in names if n.startswith('mmfapn/.mim/configs/')}
    assert len(shipped) == len(list((REPO / 'configs').rglob('*.py')))
    cwd = tmp_path / 'elsewhere'
    cwd.mkdir()
    env = dict(os.environ, PYTHONPATH=str(site))
    proc = subprocess.run([sys.executable, '-c', _INSTALLED, str(site)],
                          cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    demo = site / 'mmfapn' / '.mim' / 'configs' / DEMO_FAPN
    assert f'demo config {demo} FaPN' in proc.stdout
    assert (f'd2 config {site}/mmfapn/.mim/configs/det/faster_rcnn/'
            'faster-rcnn_r50_fapn_1x_coco_d2-weights.py') in proc.stdout
    assert str(REPO) not in proc.stdout

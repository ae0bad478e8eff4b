"""tools/misc/smoke_run.py as a user runs it: a config of their own in a
temporary directory, inheriting a shipped real-time FaPN config, trains and
evaluates on generated COCO-Stuff data in one command; the summary names
the checkpoint, the log and the shrunk config."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / 'configs' / 'seg' / 'fapn_realtime' / \
    'fapn-rt_r18_4xb4-20k_coco-stuff10k-640x640.py'

USER_CONFIG = '''
_base_ = [{base!r}]
# a change of the user's own: a narrower head
model = dict(decode_head=dict(channels=32))
'''


@pytest.mark.slow
def test_user_config_inheriting_a_shipped_one(tmp_path):
    user = tmp_path / 'configs' / 'my_fapn_rt.py'
    user.parent.mkdir()
    user.write_text(USER_CONFIG.format(base=str(SHIPPED)))
    work = tmp_path / 'work'
    env = dict(os.environ, OMP_NUM_THREADS='2', PYTHONWARNINGS='ignore')
    proc = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'misc' / 'smoke_run.py'),
         str(user), '--iters', '2', '--image-size', '64', '--no-test',
         '--work-dir', str(work)], cwd=str(tmp_path), env=env,
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert re.search(
        r'^smoke run OK: .*my_fapn_rt\.py \(EncoderDecoder, mmseg\): 2 '
        r'training iterations on toy COCO-Stuff-10K data \(64x96 images\) '
        rf'in {re.escape(str(work / "data" / "coco_stuff"))} in [\d.]+ s$',
        out, re.M), out[-3000:]
    assert re.search(r'^  val: +aAcc=[\d.]+, mIoU=[\d.]+, mAcc=[\d.]+$', out,
                     re.M), out[-2000:]
    assert '  test:       not run\n' in out  # --no-test
    assert f'  checkpoint: {work / "iter_2.pth"}\n' in out
    assert (work / 'iter_2.pth').is_file()
    log = re.search(r'^  log: +(\S+)$', out, re.M).group(1)
    assert Path(log).is_file()
    dump = work / 'my_fapn_rt.py'
    assert f'  config:     {dump}\n' in out and dump.is_file()
    # the user's change and the smoke run's are both in the shrunk config
    text = dump.read_text()
    assert 'channels=32' in text and 'num_classes=171' in text
    assert 'not loaded (trained from scratch): torchvision://resnet18' in out

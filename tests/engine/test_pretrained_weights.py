"""Pretrained checkpoints that cannot be loaded (torchvision missing, a file
absent, a failed download) give one line naming the config key, the
checkpoint and the override that trains from scratch: from the pre-flight
check, from mmengine's Runner (what ``mim train`` runs) and from
``tools/train.py``, which exits non-zero with exactly that line."""
import subprocess
import sys
from pathlib import Path

import pytest
from mmengine.config import Config

# (the Runner check is installed by loading an mmfapn config: the configs'
# custom_imports, as under ``mim train``)
from mmfapn.engine import (PretrainedWeightsError, check_pretrained_weights,
                           pretrained_references)
from mmfapn.engine.pretrained_weights import (from_scratch_override,
                                              unloadable_reason)

REPO = Path(__file__).resolve().parents[2]
TV = 'torchvision://resnet18'


def _child(tmp_path, base, init_cfg, name='child.py'):
    path = tmp_path / name
    path.write_text(f'_base_ = [{base!r}]\n'
                    'model = dict(backbone=dict(init_cfg=dict(_delete_=True, '
                    f'**{init_cfg!r})))\n')
    return str(path)


@pytest.fixture
def no_torchvision(monkeypatch):
    """torchvision absent, whether or not this environment has it."""
    monkeypatch.setitem(sys.modules, 'torchvision', None)


def test_references_and_overrides():
    cfg = Config(dict(model=dict(
        pretrained='open-mmlab://resnet50_v1c',
        backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=TV)),
        head=dict(init_cfg=[dict(type='Normal', std=0.01),
                            dict(type='Pretrained', checkpoint='a.pth')]),
        neck=dict(init_cfg=dict(type='Xavier'))),
        pretrained='https://top-level/variable.pth'))
    assert pretrained_references(cfg) == [
        ('model.pretrained', 'open-mmlab://resnet50_v1c'),
        ('model.backbone.init_cfg.checkpoint', TV),
        ('model.head.init_cfg[1].checkpoint', 'a.pth'),
    ]
    assert [from_scratch_override(k) for k, _ in pretrained_references(
        cfg)] == ['model.pretrained=None', 'model.backbone.init_cfg=None',
                  'model.head.init_cfg=None']
    assert pretrained_references(Config(dict(model=dict(type='X')))) == []


def test_unloadable_reasons(tmp_path, no_torchvision):
    assert unloadable_reason(TV) == 'torchvision is not installed'
    assert unloadable_reason(str(tmp_path / 'no.pth')) == 'file not found'
    truncated = tmp_path / 'cut.pth'
    truncated.write_bytes(b'PK\x03\x04 not a whole zip')
    assert 'incomplete' in unloadable_reason(str(truncated))
    # remote checkpoints are only found out when loaded
    assert unloadable_reason('https://example.invalid/x.pth') is None
    assert unloadable_reason('open-mmlab://resnet50_v1c') is None


def test_check_names_key_checkpoint_and_override(no_torchvision):
    cfg = Config(dict(model=dict(backbone=dict(
        init_cfg=dict(type='Pretrained', checkpoint=TV)))))
    with pytest.raises(PretrainedWeightsError) as info:
        check_pretrained_weights(cfg)
    assert str(info.value) == (
        "config model.backbone.init_cfg.checkpoint='torchvision://resnet18'"
        ': pretrained weights cannot be loaded (torchvision is not '
        'installed); to train from scratch: --cfg-options '
        'model.backbone.init_cfg=None')
    assert '\n' not in str(info.value)
    assert isinstance(info.value, ValueError)  # the tools print ValueErrors
    cfg.model.backbone.init_cfg = None
    check_pretrained_weights(cfg)  # nothing left to load


def _runner(config, work_dir):
    from mmengine.runner import Runner
    cfg = Config.fromfile(config)
    cfg.work_dir = str(work_dir)
    return Runner.from_cfg(cfg)


def test_runner_train_names_missing_torchvision(tiny_fapn_seg_config,
                                                tmp_path, no_torchvision):
    """The path of ``mim train``: mmengine's Runner, no mmfapn tool."""
    config = _child(tmp_path, tiny_fapn_seg_config,
                    dict(type='Pretrained', checkpoint=TV))
    runner = _runner(config, tmp_path / 'work')
    with pytest.raises(PretrainedWeightsError,
                       match=r"^config model\.backbone\.init_cfg\.checkpoint="
                       r"'torchvision://resnet18': pretrained weights cannot "
                       r"be loaded \(torchvision is not installed\); to train "
                       r"from scratch: --cfg-options "
                       r"model\.backbone\.init_cfg=None$"):
        runner.train()
    assert not list((tmp_path / 'work').glob('*.pth'))


def test_runner_train_names_a_failed_download(tiny_fapn_seg_config,
                                              tmp_path):
    """An error raised while mmengine's CheckpointLoader loads the weights
    (here a scheme whose download fails, as without network) becomes the
    one line, chained to the original error; other errors are untouched."""
    from mmengine.runner.checkpoint import CheckpointLoader

    def offline(filename, map_location=None):
        raise ConnectionError(f'<urlopen error [Errno -3] Temporary failure '
                              f'in name resolution> ({filename})')

    CheckpointLoader.register_scheme('offline-test://', offline, force=True)
    try:
        config = _child(tmp_path, tiny_fapn_seg_config,
                        dict(type='Pretrained',
                             checkpoint='offline-test://resnet18'))
        runner = _runner(config, tmp_path / 'work')
        with pytest.raises(PretrainedWeightsError) as info:
            runner.train()
    finally:
        CheckpointLoader._schemes.pop('offline-test://', None)
    assert str(info.value).startswith(
        "config model.backbone.init_cfg.checkpoint='offline-test://resnet18'"
        ': pretrained weights cannot be loaded (ConnectionError: <urlopen '
        'error [Errno -3] Temporary failure in name resolution>')
    assert str(info.value).endswith(
        'to train from scratch: --cfg-options model.backbone.init_cfg=None')
    assert isinstance(info.value.__cause__, ConnectionError)


def test_runner_other_init_errors_are_left_alone(tiny_fapn_seg_config,
                                                 tmp_path):
    config = _child(tmp_path, tiny_fapn_seg_config,
                    dict(type='Constant', val=1, layer='NoSuchLayer'))
    runner = _runner(config, tmp_path / 'work')
    runner.model.init_weights = lambda: (_ for _ in ()).throw(
        RuntimeError('unrelated'))
    with pytest.raises(RuntimeError, match='^unrelated$'):
        runner.train()


def test_runner_train_names_a_missing_file(tiny_fapn_seg_config, tmp_path):
    missing = str(tmp_path / 'r18.pth')
    config = _child(tmp_path, tiny_fapn_seg_config,
                    dict(type='Pretrained', checkpoint=missing))
    runner = _runner(config, tmp_path / 'work')
    with pytest.raises(PretrainedWeightsError) as info:
        runner.train()
    assert str(info.value) == (
        f"config model.backbone.init_cfg.checkpoint='{missing}': pretrained "
        'weights cannot be loaded (file not found); to train from scratch: '
        '--cfg-options model.backbone.init_cfg=None')


def test_train_tool_exits_with_one_line(tiny_fapn_seg_config, tmp_path):
    """``tools/train.py`` in a subprocess without torchvision: exit status 1
    and exactly one line on stderr, nothing trained (a missing file takes
    the same path: tests/tools/test_train_tools.py)."""
    # simulate an environment without torchvision
    (tmp_path / 'sitecustomize.py').write_text(
        "import sys\nsys.modules['torchvision'] = None\n")
    config = _child(tmp_path, tiny_fapn_seg_config,
                    dict(type='Pretrained', checkpoint=TV))
    # (the stack's own deprecation warnings silenced: the error is the line)
    env = dict(PATH='/usr/bin:/bin', PYTHONPATH=str(tmp_path),
               OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    proc = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'train.py'), config,
         '--work-dir', str(tmp_path / 'work')],
        capture_output=True, text=True, timeout=300, env=env,
        cwd=str(tmp_path))
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert proc.stderr.splitlines() == [
        "train.py: error: config model.backbone.init_cfg.checkpoint="
        "'torchvision://resnet18': pretrained weights cannot be loaded "
        '(torchvision is not installed); to train from scratch: '
        '--cfg-options model.backbone.init_cfg=None'
    ], proc.stderr[-3000:]
    assert not list((tmp_path / 'work').glob('**/*.pth'))

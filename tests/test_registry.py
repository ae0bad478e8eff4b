import subprocess
import sys

import pytest

NAMES = ['FaPN', 'FeatureSelectionModule', 'FeatureAlignModule']


@pytest.mark.parametrize('name', NAMES)
def test_registered_once_in_both_toolboxes(name):
    import mmfapn  # noqa: F401
    from mmdet.registry import MODELS as DET
    from mmseg.registry import MODELS as SEG
    assert DET.get(name) is SEG.get(name) is not None
    assert DET.module_dict[name] is SEG.module_dict[name]


def _import_without(blocked):
    # a None entry in sys.modules makes `import blocked` raise ImportError,
    # as if the package were not installed
    code = (f'import sys\n'
            f'for name in {blocked!r}: sys.modules[name] = None\n'
            'import mmfapn\n'
            'from mmfapn.registry import available_model_registries\n'
            'print(sorted(r.scope for r in available_model_registries()))\n'
            'from mmengine.registry import MODELS\n'
            'reg = available_model_registries()[0]\n'
            'print(reg.get("FaPN").__name__)\n')
    return subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize('blocked, scopes', [
    (['mmseg'], "['mmdet']"), (['mmdet'], "['mmseg']"),
    (['mmdet', 'mmseg'], "['mmengine']")])
def test_import_with_one_toolbox_missing(blocked, scopes):
    res = _import_without(blocked)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == [scopes, 'FaPN']

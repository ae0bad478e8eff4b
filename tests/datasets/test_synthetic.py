import numpy as np
import pytest

from mmfapn.datasets import render_scene


def test_scene_is_deterministic_and_consistent():
    a = render_scene(67, 91, num_classes=5, seed=3)
    b = render_scene(67, 91, num_classes=5, seed=3)
    assert a.image.shape == (67, 91, 3) and a.image.dtype == np.uint8
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.semantic, b.semantic)
    assert a.instances, 'a scene has objects'
    covered = np.zeros((67, 91), bool)
    for inst in a.instances:
        assert inst.mask.any()
        assert not (covered & inst.mask).any(), 'visible parts are disjoint'
        covered |= inst.mask
        assert (a.semantic[inst.mask] == inst.label).all()
    assert (a.semantic[~covered] == 255).all()


def test_background_class_and_shapes():
    s = render_scene(40, 40, num_classes=3, seed=1, background=3,
                     shapes=('bar', ), num_objects=(4, 4))
    assert set(np.unique(s.semantic)) <= {0, 1, 2, 3}
    assert all(i.shape == 'bar' for i in s.instances)
    with pytest.raises(ValueError, match=r"unknown shapes \['star'\]"):
        render_scene(8, 8, 2, 0, shapes=('star', ))

"""mmfapn.demo.plot: the bIoU@n plot is a PNG of the stated size."""
import numpy as np
from PIL import Image

from mmfapn.demo.plot import PLOT_SIZE, biou_plot


def _summary(base, std):
    return {f'bIoU@{n}': dict(mean=base + n, std=std) for n in (3, 5, 8, 12)}


def test_plot_png_has_the_stated_size(tmp_path):
    path = biou_plot(str(tmp_path / 'b.png'), (3, 5, 8, 12),
                     dict(FPN=_summary(40, 1.5), FaPN=_summary(42, 0.0)),
                     ('FPN', 'FaPN'), title='test split')
    assert path == str(tmp_path / 'b.png')
    with Image.open(path) as im:
        assert im.format == 'PNG'
        im.load()
        assert im.size == PLOT_SIZE == (800, 500)
        # not blank: lines, markers and text were drawn
        assert len(np.unique(np.asarray(im.convert('L')))) > 10

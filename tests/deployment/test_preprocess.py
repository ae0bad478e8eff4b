"""ImagePreprocessor does what mmdet's and mmseg's data preprocessors do at
test time (BGR -> RGB, mean/std, padding after normalisation), exactly."""
import pytest
import torch

from mmfapn.deployment import (ImagePreprocessor, padded_shape,
                               preprocess_settings)

MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


def _image(h=37, w=53, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (h, w, 3), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize('kind', ['mmdet', 'mmseg', 'mmseg-pad'])
def test_matches_the_stock_preprocessor(kind):
    if kind == 'mmdet':
        from mmdet.models.data_preprocessors import DetDataPreprocessor
        pre = DetDataPreprocessor(mean=MEAN, std=STD, bgr_to_rgb=True,
                                  pad_size_divisor=32, pad_value=7)
        pad = (64, 64)
    else:
        from mmseg.models.data_preprocessor import SegDataPreProcessor
        test_cfg = dict(size_divisor=16) if kind == 'mmseg-pad' else None
        pre = SegDataPreProcessor(mean=MEAN, std=STD, bgr_to_rgb=True,
                                  pad_val=3, test_cfg=test_cfg)
        pad = (48, 64) if test_cfg else (37, 53)
    image = _image()
    module = ImagePreprocessor.from_preprocessor(pre, (37, 53))
    assert module.pad_shape == pad
    got = module(image[None])
    ref = pre(dict(inputs=[image.permute(2, 0, 1)]), False)['inputs'] \
        if kind == 'mmdet' else pre(
            dict(inputs=[image.permute(2, 0, 1)],
                 data_samples=[_seg_sample()]), False)['inputs']
    assert got.shape == ref.shape == (1, 3) + pad
    torch.testing.assert_close(got, ref, rtol=0, atol=0)


def _seg_sample():
    from mmseg.structures import SegDataSample
    return SegDataSample(metainfo=dict(img_shape=(37, 53),
                                       ori_shape=(37, 53)))


def test_settings_and_shapes():
    from mmseg.models.data_preprocessor import SegDataPreProcessor
    pre = SegDataPreProcessor(mean=MEAN, std=STD, bgr_to_rgb=False,
                              test_cfg=dict(size=(64, 80)))
    settings = preprocess_settings(pre)
    assert settings == dict(bgr_to_rgb=False, mean=pytest.approx(MEAN),
                            std=pytest.approx(STD), size_divisor=None,
                            size=(64, 80), pad_value=0.0)
    assert padded_shape((37, 53), None, (64, 80)) == (64, 80)
    assert padded_shape((64, 96), 32) == (64, 96)
    assert padded_shape((65, 97), 32) == (96, 128)
    with pytest.raises(ValueError, match='cannot put a Linear in the graph'):
        preprocess_settings(torch.nn.Linear(1, 1))

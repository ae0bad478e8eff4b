"""MaskFormer + FaPN COCO panoptic config for mmdet: differs from the stock
MaskFormer config only by the pixel decoder, keeps its DETR encoder, and runs
loss()/predict() on the toy COCO panoptic data (mmdet's own dataset and
preprocessor, odd 65x97 images)."""
import torch

from mmfapn.models.pixel_decoders import FaPNPixelDecoder

CONFIG = 'maskformer/maskformer_r50_fapn_ms-16xb1-75e_coco.py'
FAM = 2 * 256 * 256 + (256 * 256 * 9 + 256) + (256 * 216 * 9 + 216)


def test_only_the_pixel_decoder_differs(det_config, det_stock_base,
                                        det_stock_config, det_model,
                                        count_params):
    fapn_cfg = det_config(CONFIG)
    stock_cfg = det_stock_config(det_stock_base(CONFIG))
    fapn, stock = fapn_cfg.to_dict(), stock_cfg.to_dict()
    for cfg in (fapn, stock):
        cfg.pop('custom_imports', None)
    # every mmfapn config's runner (configs/_base_): exact resumption and
    # the data checks
    assert fapn.pop('runner_type') == 'DataCheckedRunner'
    assert 'runner_type' not in stock
    fapn_dec = fapn['model']['panoptic_head']['pixel_decoder']
    stock_dec = stock['model']['panoptic_head']['pixel_decoder']
    assert fapn_dec.pop('type') == 'FaPNPixelDecoder'
    assert stock_dec.pop('type') == 'TransformerEncoderPixelDecoder'
    assert fapn == stock  # encoder settings, head, data, schedule included

    model = det_model(fapn_cfg.model, init=False)
    base = det_model(stock_cfg.model, init=False)
    decoder = model.panoptic_head.pixel_decoder
    assert isinstance(decoder, FaPNPixelDecoder)
    assert decoder.encoder is not None and len(decoder.encoder.layers) == 6
    # FaPN adds exactly its 3 FAMs to the stock (encoder) pixel decoder
    diff = count_params(model) - count_params(base)
    assert diff == count_params(decoder) - count_params(
        base.panoptic_head.pixel_decoder) == 3 * FAM
    print(f'{CONFIG}: {count_params(model):,} params (stock MaskFormer '
          f'{count_params(base):,}, +{diff:,})')


def test_loss_and_predict(det_config, det_model, det_toy_batch):
    torch.manual_seed(0)
    model = det_model(det_config(CONFIG).model)
    decoder = model.panoptic_head.pixel_decoder
    for fam in decoder.align_modules:  # zero offsets after init_weights
        assert not fam.dcn.conv_offset.weight.any()

    model.train()
    batch = det_toy_batch('panoptic')
    data = model.data_preprocessor(batch, training=True)
    # no fixed size: the odd 65x97 images reach the network unpadded
    assert tuple(data['inputs'].shape) == (2, 3, 65, 97)
    losses = model(**data, mode='loss')
    loss, log_vars = model.parse_losses(losses)
    assert torch.isfinite(loss) and loss.item() > 0
    assert {'loss_cls', 'loss_mask', 'loss_dice', 'd4.loss_dice'} <= set(
        log_vars), sorted(log_vars)
    loss.backward()
    for fam in decoder.align_modules:
        for p in (fam.dcn.weight, fam.dcn.conv_offset.weight):
            assert p.grad is not None and p.grad.abs().sum() > 0
    for p in decoder.encoder.parameters():
        assert p.grad is not None

    model.eval()
    with torch.no_grad():
        batch = det_toy_batch('panoptic', split='val')
        results = model(**model.data_preprocessor(batch, training=False),
                        mode='predict')
    from mmdet.evaluation import INSTANCE_OFFSET
    assert len(results) == 2
    for res, gt in zip(results, batch['data_samples']):
        h, w = gt.ori_shape
        pan = res.pred_panoptic_seg.sem_seg
        assert tuple(pan.shape) == (1, h, w)
        labels = pan % INSTANCE_OFFSET
        assert labels.min() >= 0 and labels.max() <= 133  # 133 = void

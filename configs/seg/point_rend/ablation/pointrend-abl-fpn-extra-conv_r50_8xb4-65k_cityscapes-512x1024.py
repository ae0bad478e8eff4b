# FaPN Table 1, row "FPN + extra 3x3 conv." (paper: 33.4M params, 77.5 mIoU):
# FPN (nearest upsampling, 1x1 laterals, a 3x3 output conv on every level)
# with two more 3x3 convs after each of the 4 outputs, +8 x 590,080
# parameters; the paper does not say where its extra convs sit.
_base_ = ['../pointrend_r50_fapn_8xb4-65k_cityscapes-512x1024.py']
model = dict(
    neck=dict(
        lateral='conv',
        align='none',
        top_output_conv=True,
        extra_output_convs=2,
        upsample_cfg=dict(mode='nearest')))

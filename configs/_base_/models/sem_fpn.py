# mmseg's Semantic FPN (Kirillov et al., 2019) with a PVT backbone, as the PVT papers use it on
# ADE20K: FPN to 256 channels at strides 4/8/16/32, then FPNHead with 128 channels, 150 classes.
# The backbone here is PVT-Small; leaf configs change only `backbone` and `neck.in_channels`.
_base_ = ['mmseg::_base_/models/fpn_r50.py', './pvt_backbones.py']

# As mmseg's configs: training batches are padded to the crop size (a config with another crop sets
# `data_preprocessor = dict(size=crop_size)` and `model = dict(data_preprocessor=...)`), test
# images, whole and of any size, to a multiple of 32.
data_preprocessor = dict(size=(512, 512), test_cfg=dict(size_divisor=32))
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,  # mmseg's ResNet-50 weights; the backbone's init_cfg names its own
    backbone=dict(_base_.pvt_small_backbone, _delete_=True),
    neck=dict(in_channels=[64, 128, 320, 512]),
    decode_head=dict(num_classes=150))

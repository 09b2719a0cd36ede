# Mask R-CNN + FPN, PVTv2-B0 backbone, 3x schedule with multi-scale crop training.
# Official repository (whai362/PVT detection/README.md), COCO val2017 box / mask AP: 41.6 / 38.2.
_base_ = './mask_rcnn_pvt_v2_b2_fpn_3x.py'
model = dict(
    backbone=dict(
        arch='b0',
        init_cfg=dict(
            checkpoint='https://github.com/whai362/PVT/releases/download/v2/pvt_v2_b0.pth')),
    neck=dict(in_channels=[32, 64, 160, 256]))

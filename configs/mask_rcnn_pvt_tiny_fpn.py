# Mask R-CNN + FPN, PVT-Tiny backbone, 1x schedule.
# Paper, COCO val2017 box / mask AP: 36.7 / 35.1.
_base_ = './mask_rcnn_pvt_small_fpn.py'
model = dict(backbone=dict(
    arch='tiny',
    init_cfg=dict(checkpoint='https://github.com/whai362/PVT/releases/download/v2/pvt_tiny.pth')))

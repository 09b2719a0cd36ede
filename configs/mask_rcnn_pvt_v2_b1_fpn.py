# Mask R-CNN + FPN, PVTv2-B1 backbone, 1x schedule.
# Paper, COCO val2017 box / mask AP: 41.8 / 38.8.
_base_ = './mask_rcnn_pvt_v2_b2_fpn.py'
model = dict(backbone=dict(
    arch='b1',
    init_cfg=dict(checkpoint='https://github.com/whai362/PVT/releases/download/v2/pvt_v2_b1.pth')))

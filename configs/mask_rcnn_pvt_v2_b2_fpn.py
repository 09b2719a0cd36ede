# Mask R-CNN + FPN, PVTv2-B2 backbone, 1x schedule.
# Every PVTv2 Mask R-CNN config derives from this one.
# Paper, COCO val2017 box / mask AP: 45.3 / 41.2.
_base_ = './mask_rcnn_pvt_small_fpn.py'
model = dict(backbone=dict(
    type='PVTv2', arch='b2',
    init_cfg=dict(checkpoint='https://github.com/whai362/PVT/releases/download/v2/pvt_v2_b2.pth')))

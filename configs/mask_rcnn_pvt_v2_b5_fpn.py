# Mask R-CNN + FPN, PVTv2-B5 backbone, 1x schedule (batch and lr as B4).
# Paper, COCO val2017 box / mask AP: 47.4 / 42.5.
_base_ = './mask_rcnn_pvt_v2_b4_fpn.py'
model = dict(backbone=dict(
    arch='b5',
    init_cfg=dict(checkpoint='https://github.com/whai362/PVT/releases/download/v2/pvt_v2_b5.pth')))

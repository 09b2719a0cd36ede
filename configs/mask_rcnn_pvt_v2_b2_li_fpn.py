# Mask R-CNN + FPN, PVTv2-B2-Li backbone (linear SRA: average pooling to 7x7), 1x schedule.
# Paper, COCO val2017 box / mask AP: 44.1 / 40.5.
_base_ = './mask_rcnn_pvt_v2_b2_fpn.py'
model = dict(backbone=dict(
    arch='b2_li',
    init_cfg=dict(
        checkpoint='https://github.com/whai362/PVT/releases/download/v2/pvt_v2_b2_li.pth')))

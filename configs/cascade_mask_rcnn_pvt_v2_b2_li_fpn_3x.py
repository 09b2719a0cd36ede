# Cascade Mask R-CNN + FPN, PVTv2-B2-Li backbone (linear SRA), 3x schedule with multi-scale crop
# training.
# Official repository (whai362/PVT detection/README.md), COCO val2017 box / mask AP: 50.9 / 44.0.
_base_ = './cascade_mask_rcnn_pvt_v2_b2_fpn_3x.py'
checkpoint_file = 'https://github.com/whai362/PVT/releases/download/v2/pvt_v2_b2_li.pth'
model = dict(backbone=dict(arch='b2_li', init_cfg=dict(checkpoint=checkpoint_file)))

# Semantic FPN + PVTv2-B2-Li on ADE20K, 512x512 crops, 80k iterations at batch 16.
# PVT v2 paper, ADE20K val mIoU (single scale): 45.1.
_base_ = './sem_fpn_pvt_v2_b2_ade20k.py'
model = dict(backbone=dict(
    arch='b2_li',
    init_cfg=dict(
        checkpoint='https://github.com/whai362/PVT/releases/download/v2/pvt_v2_b2_li.pth')))

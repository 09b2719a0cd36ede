# Semantic FPN + PVTv2-B4 on ADE20K, 512x512 crops, 80k iterations at batch 16.
# PVT v2 paper, ADE20K val mIoU (single scale): 47.9.
_base_ = './sem_fpn_pvt_v2_b2_ade20k.py'
model = dict(backbone=dict(
    arch='b4',
    init_cfg=dict(checkpoint='https://github.com/whai362/PVT/releases/download/v2/pvt_v2_b4.pth')))

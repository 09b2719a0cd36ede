# Semantic FPN + PVTv2-B2 on ADE20K, 512x512 crops, 80k iterations at batch 16.
# Every PVTv2 Semantic FPN config derives from this one.
# PVT v2 paper, ADE20K val mIoU (single scale): 45.2.
_base_ = './sem_fpn_pvt_small_ade20k.py'
model = dict(backbone=dict(
    type='PVTv2',
    arch='b2',
    init_cfg=dict(checkpoint='https://github.com/whai362/PVT/releases/download/v2/pvt_v2_b2.pth')))

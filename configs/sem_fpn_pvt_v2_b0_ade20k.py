# Semantic FPN + PVTv2-B0 on ADE20K, 512x512 crops, 80k iterations at batch 16.
# PVT v2 paper, ADE20K val mIoU (single scale): 37.2.
_base_ = './sem_fpn_pvt_v2_b2_ade20k.py'
model = dict(
    backbone=dict(
        arch='b0',
        init_cfg=dict(
            checkpoint='https://github.com/whai362/PVT/releases/download/v2/pvt_v2_b0.pth')),
    neck=dict(in_channels=[32, 64, 160, 256]))

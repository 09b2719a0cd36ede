# Semantic FPN + PVT-Large on ADE20K, 512x512 crops, 80k iterations at batch 16.
# PVT v1 paper, ADE20K val mIoU (single scale): 42.1.
_base_ = './sem_fpn_pvt_small_ade20k.py'
model = dict(backbone=dict(
    arch='large',
    init_cfg=dict(checkpoint='https://github.com/whai362/PVT/releases/download/v2/pvt_large.pth')))

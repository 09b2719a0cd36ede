# RetinaNet + FPN, PVTv2-B2 backbone, 1x schedule.
# Every PVTv2 RetinaNet config derives from this one.
# Paper, COCO val2017 box AP: 44.6.
_base_ = './retinanet_pvt_small_fpn.py'
model = dict(backbone=dict(
    type='PVTv2', arch='b2',
    init_cfg=dict(checkpoint='https://github.com/whai362/PVT/releases/download/v2/pvt_v2_b2.pth')))

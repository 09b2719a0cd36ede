# RetinaNet + FPN, PVT-Medium backbone, 1x schedule.
# Paper, COCO val2017 box AP: 41.9.
_base_ = './retinanet_pvt_small_fpn.py'
model = dict(backbone=dict(
    arch='medium', drop_path_rate=0.,
    init_cfg=dict(checkpoint='https://github.com/whai362/PVT/releases/download/v2/pvt_medium.pth')))

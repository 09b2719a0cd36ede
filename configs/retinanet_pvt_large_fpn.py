# RetinaNet + FPN, PVT-Large backbone, 1x schedule.
# Paper, COCO val2017 box AP: 42.6.
# As the official config: 2 images per GPU at lr 1e-4 (the PVT-Small recipe); it trained with apex
# mixed precision, here `tools/train.py --amp`.
_base_ = './retinanet_pvt_small_fpn.py'
model = dict(backbone=dict(
    arch='large', drop_path_rate=0.,
    init_cfg=dict(checkpoint='https://github.com/whai362/PVT/releases/download/v2/pvt_large.pth')))

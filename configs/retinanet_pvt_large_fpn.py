# RetinaNet + FPN, PVT-Large backbone, 1x schedule.
# Paper, COCO val2017 box AP: 42.6.
_base_ = './retinanet_pvt_small_fpn.py'
model = dict(backbone=dict(
    arch='large', drop_path_rate=0.,
    init_cfg=dict(checkpoint='https://github.com/whai362/PVT/releases/download/v2/pvt_large.pth')))
# As the official config: 1 image per GPU at lr / 1.4 (memory); auto_scale_lr base is 8 x 1.
train_dataloader = dict(batch_size=1, num_workers=1)
optim_wrapper = dict(optimizer=dict(lr=1e-4 / 1.4))
auto_scale_lr = dict(base_batch_size=8)

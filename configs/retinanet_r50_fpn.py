# The ResNet-50 twin of retinanet_pvt_small_fpn.py: same detector, schedule and optimizer;
# only the backbone and the FPN input widths differ.
# Paper, COCO val2017 box AP: 36.3.
_base_ = './retinanet_pvt_small_fpn.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
    neck=dict(in_channels=[256, 512, 1024, 2048]))

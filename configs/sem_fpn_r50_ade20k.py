# The ResNet-50 twin of sem_fpn_pvt_small_ade20k.py: only the backbone and neck.in_channels differ.
# mmseg's ResNet-50 for Semantic FPN is ResNetV1c (3x3 deep stem), as in its fpn_r50 configs.
# Paper (PVT v1, its ResNet-50 row), ADE20K val mIoU: 36.7.
_base_ = './sem_fpn_pvt_small_ade20k.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNetV1c',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        dilations=(1, 1, 1, 1),
        strides=(1, 2, 2, 2),
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        norm_eval=False,
        style='pytorch',
        contract_dilation=True,
        init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://resnet50_v1c')),
    neck=dict(in_channels=[256, 512, 1024, 2048]))

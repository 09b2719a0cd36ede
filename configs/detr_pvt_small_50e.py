# DETR on the last stage of PVT-Small (stride 32, 512 channels), 50 epochs: mmdet's DETR (its
# transformer, Hungarian assigner and AdamW lr 1e-4 with the backbone at 0.1x, gradient clipping
# at 0.1) with the official PVT recipe: multi-scale training without crops (short side 640-800),
# images padded to a multiple of 32, lr x0.1 after epoch 33, no warm-up, 2 images per GPU.
# PVT v1 paper (its DETR comparison, 50 epochs), COCO val2017 box AP: 34.7.
_base_ = ['mmdet::detr/detr_r50_8xb2-150e_coco.py', '_base_/models/pvt_backbones.py']
model = dict(
    data_preprocessor=dict(pad_size_divisor=32),
    backbone=dict(_base_.pvt_small_backbone, _delete_=True, out_indices=(3, )),
    neck=dict(in_channels=[512]))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomChoiceResize', scales=[(1333, short) for short in range(640, 801, 32)],
         keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
train_cfg = dict(max_epochs=50)
param_scheduler = [
    dict(type='MultiStepLR', begin=0, end=50, by_epoch=True, milestones=[33], gamma=0.1)
]

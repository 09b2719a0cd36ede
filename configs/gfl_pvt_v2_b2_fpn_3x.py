# GFL + FPN, PVTv2-B2 backbone, 3x schedule with multi-scale crop training: mmdet's GFL (FPN
# from stride 8, P6/P7 on its outputs, as the official config) with the official PVTv2 3x recipe.
# Official repository (whai362/PVT detection/README.md), COCO val2017 box AP: 50.2.
_base_ = [
    'mmdet::gfl/gfl_r50_fpn_1x_coco.py', '_base_/models/pvt_backbones.py',
    '_base_/datasets/coco_ms_crop.py', '_base_/schedules/schedule_3x.py'
]
model = dict(backbone=dict(_base_.pvt_v2_b2_backbone, _delete_=True),
             neck=dict(in_channels=[64, 128, 320, 512]))
train_pipeline = _base_.ms_crop_train_pipeline
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
optim_wrapper = dict(_base_.optim_wrapper_3x, _delete_=True)
param_scheduler = _base_.param_scheduler_3x
train_cfg = _base_.train_cfg_3x

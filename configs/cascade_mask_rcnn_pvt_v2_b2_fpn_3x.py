# Cascade Mask R-CNN + FPN, PVTv2-B2 backbone, 3x schedule with multi-scale crop training. mmdet
# ships this detector for ConvNeXt-T: three 4conv1fc box heads (SyncBN, GIoU loss x10, decoded-box
# regression), the crop pipeline with masks, 36 epochs with lr x0.1 after 27 and 33 (all as the
# official config); here with PVTv2-B2 and the official optimizer and warm-up (schedule_3x.py) in
# place of its layer-wise-decay AdamW and 1000-iteration warm-up.
# Official repository (whai362/PVT detection/README.md), COCO val2017 box / mask AP: 51.1 / 44.4.
_base_ = [
    'mmdet::convnext/cascade-mask-rcnn_convnext-t-p4-w7_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py',
    '_base_/schedules/schedule_3x.py'
]
# The ConvNeXt config imports mmpretrain, so it cannot sit beside models/pvt_backbones.py (one
# key, two bases): the import and the backbone are spelled out here.
custom_imports = dict(imports=['pvt_det'], allow_failed_imports=False)
checkpoint_file = 'https://github.com/whai362/PVT/releases/download/v2/pvt_v2_b2.pth'
model = dict(
    backbone=dict(_delete_=True, type='PVTv2', arch='b2', drop_path_rate=0.1,
                  init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)),
    neck=dict(in_channels=[64, 128, 320, 512]))
optim_wrapper = dict(_base_.optim_wrapper_3x, _delete_=True)
param_scheduler = _base_.param_scheduler_3x
train_cfg = _base_.train_cfg_3x

# Mask R-CNN + FPN, PVTv2-B2 backbone, 3x schedule with multi-scale crop training.
# Official repository (whai362/PVT detection/README.md), COCO val2017 box / mask AP: 47.8 / 43.1.
_base_ = ['./mask_rcnn_pvt_v2_b2_fpn.py', '_base_/datasets/coco_ms_crop.py',
          '_base_/schedules/schedule_3x.py']
train_pipeline = _base_.ms_crop_instance_train_pipeline
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
optim_wrapper = dict(_base_.optim_wrapper_3x, _delete_=True)
param_scheduler = _base_.param_scheduler_3x
train_cfg = _base_.train_cfg_3x

# Mask R-CNN + FPN, PVT-Small backbone, 1x schedule.
# Every PVT Mask R-CNN config derives from this one.
# Paper, COCO val2017 box / mask AP: 40.4 / 37.8.
_base_ = [
    '_base_/models/mask_rcnn_fpn.py', 'mmdet::_base_/datasets/coco_instance.py',
    '_base_/schedules/schedule_1x.py', 'mmdet::_base_/default_runtime.py'
]
optim_wrapper = dict(optimizer=dict(lr=2e-4))

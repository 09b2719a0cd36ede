# RetinaNet + FPN, PVT-Small backbone, 1x schedule.
# Every PVT RetinaNet config derives from this one.
# Paper, COCO val2017 box AP: 40.4.
_base_ = [
    '_base_/models/retinanet_fpn.py', 'mmdet::_base_/datasets/coco_detection.py',
    '_base_/schedules/schedule_1x.py', 'mmdet::_base_/default_runtime.py'
]

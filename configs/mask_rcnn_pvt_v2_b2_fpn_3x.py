# Mask R-CNN + FPN, PVTv2-B2 backbone, 3x schedule with multi-scale training.
# Paper, COCO val2017 box / mask AP: 47.8 / 43.1.
_base_ = [
    '_base_/models/mask_rcnn_fpn.py', '_base_/datasets/coco_instance_ms.py',
    '_base_/schedules/schedule_3x.py', '_base_/default_runtime.py'
]
model = dict(backbone=dict(
    type='PVTv2', arch='b2',
    init_cfg=dict(checkpoint='https://github.com/whai362/PVT/releases/download/v2/pvt_v2_b2.pth')))

# Semantic FPN + PVT-Small on ADE20K, 512x512 crops, 80k iterations at batch 16.
# Every PVT Semantic FPN config derives from this one.
# PVT v1 paper, ADE20K val mIoU (single scale): 39.8.
_base_ = [
    '_base_/models/sem_fpn.py', 'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py', '_base_/schedules/schedule_80k.py'
]

# GFL + FPN, PVTv2-B2-Li backbone (linear SRA), 3x schedule with multi-scale crop training.
# Official repository (whai362/PVT detection/README.md), COCO val2017 box AP: 49.2.
_base_ = './gfl_pvt_v2_b2_fpn_3x.py'
model = dict(backbone=dict(_base_.pvt_v2_b2_li_backbone, _delete_=True))

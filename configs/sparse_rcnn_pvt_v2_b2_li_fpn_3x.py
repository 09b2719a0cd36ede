# Sparse R-CNN + FPN, PVTv2-B2-Li backbone (linear SRA), 300 proposals, 3x schedule with
# multi-scale crop training (480-800). Unlike B2, the official config keeps mmdet's 2 images per GPU
# at lr 2.5e-5.
# Official repository (whai362/PVT detection/README.md), COCO val2017 box AP: 48.9.
_base_ = './sparse_rcnn_pvt_v2_b2_fpn_3x.py'
model = dict(backbone=dict(_base_.pvt_v2_b2_li_backbone, _delete_=True))
train_dataloader = dict(batch_size=2, num_workers=2)
optim_wrapper = dict(optimizer=dict(lr=2.5e-5))
auto_scale_lr = dict(base_batch_size=16)

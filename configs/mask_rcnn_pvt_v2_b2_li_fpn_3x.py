# Mask R-CNN + FPN, PVTv2-B2-Li backbone (linear SRA), 3x schedule with multi-scale crop training.
# The official repository has this config but publishes no result for it.
_base_ = './mask_rcnn_pvt_v2_b2_fpn_3x.py'
model = dict(backbone=dict(_base_.pvt_v2_b2_li_backbone, _delete_=True))

# RetinaNet + FPN, CvT-13 backbone, 1x schedule (the PVT-Small recipe;
# the CvT paper has no COCO result).
# CvT has three stages (strides 4/8/16): FPN starts at stride 8 and its extra convs on the stride-16
# map make P5-P7, so the head sees the usual strides 8-128.
_base_ = './retinanet_pvt_small_fpn.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='CvT',
        arch='13',
        out_indices=(0, 1, 2),
        drop_path_rate=0.1,
        # 2 images per GPU: keep the ImageNet BatchNorm statistics of the q/k/v projections,
        # as mmdet's ResNet configs do.
        norm_eval=True,
        # Hugging Face's copy of the official ImageNet-1k weights (trained with QuickGELU,
        # our default activation).
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://huggingface.co/microsoft/cvt-13/resolve/main/pytorch_model.bin')),
    neck=dict(in_channels=[64, 192, 384]))

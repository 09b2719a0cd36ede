# Semantic FPN + CvT-13 on ADE20K, 512x512 crops, 80k iterations at batch 16 (the PVT recipe; the
# CvT paper has no ADE20K result). CvT has three stages (strides 4/8/16): an FPN extra conv makes
# the stride-32 level that FPNHead expects.
_base_ = './sem_fpn_pvt_small_ade20k.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='CvT',
        arch='13',
        out_indices=(0, 1, 2),
        drop_path_rate=0.1,
        # Hugging Face's copy of the official ImageNet-1k weights (trained with QuickGELU,
        # our default activation).
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://huggingface.co/microsoft/cvt-13/resolve/main/pytorch_model.bin')),
    neck=dict(in_channels=[64, 192, 384], add_extra_convs='on_input'))

# The multi-scale crop training of the PVTv2 3x recipes (from DETR / Sparse R-CNN, as the official
# *_3x_mstrain configs): a random flip, then either a random short side in 480-800 (long side at
# most 1333), or a resize to a short side of 400/500/600, a random 384-600 crop and a resize to
# 480-800. Testing stays mmdet's single-scale 1333x800.
# The pipelines travel under names of their own (mmdet's dataset bases already define
# `train_pipeline`); a 3x config on top of a COCO dataset base applies one with
#     train_dataloader = dict(dataset=dict(pipeline=_base_.ms_crop_train_pipeline))
# (`ms_crop_instance_train_pipeline` loads the masks too).
ms_crop_scales = [(1333, short) for short in range(480, 801, 32)]
ms_crop = dict(
    type='RandomChoice',
    transforms=[
        [dict(type='RandomChoiceResize', scales=ms_crop_scales, keep_ratio=True)],
        [
            dict(type='RandomChoiceResize', scales=[(1333, 400), (1333, 500), (1333, 600)],
                 keep_ratio=True),
            dict(type='RandomCrop', crop_type='absolute_range', crop_size=(384, 600),
                 allow_negative_crop=True),
            dict(type='RandomChoiceResize', scales=ms_crop_scales, keep_ratio=True),
        ],
    ])
ms_crop_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomFlip', prob=0.5),
    ms_crop,
    dict(type='PackDetInputs')
]
ms_crop_instance_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    ms_crop,
    dict(type='PackDetInputs')
]

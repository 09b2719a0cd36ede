# retinanet_pvt_v2_b0_my_coco.py with its "What to change" block filled in for a small dataset
# (docs/get_started.md, section 5): 12 generated training images, trained from scratch. Make the data:
#   python -c "from pvt_det.datasets import make_coco_dataset; make_coco_dataset('data/shapes', num_train=12, num_val=8, image_size=(128, 128))"
_base_ = '../retinanet_pvt_v2_b0_fpn.py'

# ---- What to change for your data ----------------------------------------------------------------
# Filled in for 12 training and 8 validation images of 128x128 px, 3 classes, in COCO's file names
# (docs/get_started.md, "A small dataset, step by step").
data_root = 'data/shapes/'
train_ann_file, train_images = 'annotations/instances_train2017.json', 'train2017/'
val_ann_file, val_images = 'annotations/instances_val2017.json', 'val2017/'
classes = ('square', 'circle', 'triangle')
# The images' own size: the objects are 31-64 px.
image_scale = (128, 128)
# 12 images at batch 2 = 6 iterations an epoch: 12 epochs = 72 iterations, 12 of them warm-up.
max_epochs = 12
batch_size = 2
warmup_iters = 12
eval_every = 12
# From scratch (no ImageNet weights offline), so a higher lr than the fine-tuning recipe's 1e-4.
lr = 3e-4
adam_betas = (0.9, 0.98)  # a run of 72 iterations
pretrained = None
# ---------------------------------------------------------------------------------------------------

metainfo = dict(classes=classes)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    batch_size=batch_size,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file=train_ann_file,
        data_prefix=dict(img=train_images),
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file=val_ann_file,
        data_prefix=dict(img=val_images),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + val_ann_file)  # a full path: COCO evaluation reads it
test_evaluator = val_evaluator

model = dict(
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=pretrained) if pretrained else None),
    bbox_head=dict(num_classes=len(classes)))

# Warm-up, then lr x0.1 at 2/3 and 11/12 of the run (epochs 8 and 11 of 12, as on COCO).
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, gamma=0.1,
         milestones=[max(round(max_epochs * 2 / 3), 1), max(round(max_epochs * 11 / 12), 1)])
]
# Clipping keeps one bad batch's gradient (norms of several hundred on small data trained from scratch)
# out of AdamW's averages; without it such runs stalled (docs/get_started.md section 5).
optim_wrapper = dict(optimizer=dict(lr=lr, betas=adam_betas), clip_grad=dict(max_norm=10.0))
train_cfg = dict(max_epochs=max_epochs, val_interval=eval_every)
default_hooks = dict(checkpoint=dict(interval=eval_every, max_keep_ckpts=3))
randomness = dict(seed=0)  # the same run every time, on one machine

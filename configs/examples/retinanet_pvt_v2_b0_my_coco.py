# Example: RetinaNet-PVTv2-B0 on your own COCO-format dataset (docs/get_started.md, section 5).
# Copy this file (keep it in configs/examples/, or make `_base_` an absolute path), then edit the
# block below; nothing else needs to change. Copy it, do not inherit it: the block's values are copied
# into the dataloaders, train_cfg, ... when the file is read, so a config with this file as `_base_` that
# sets `data_root` or `max_epochs` (or `--cfg-options max_epochs=36`) would change nothing; tools/train.py
# stops and names the keys to set instead. Expected files (the names are set in the block):
#   data/my_dataset/annotations/train.json   data/my_dataset/images/train/*.jpg
#   data/my_dataset/annotations/val.json     data/my_dataset/images/val/*.jpg
_base_ = '../retinanet_pvt_v2_b0_fpn.py'

# ---- What to change for your data ----------------------------------------------------------------
data_root = 'data/my_dataset/'
train_ann_file, train_images = 'annotations/train.json', 'images/train/'
val_ann_file, val_images = 'annotations/val.json', 'images/val/'
# The `name`s of the JSON's `categories`, in the order you want as labels 0..n-1.
classes = ('cat', 'dog')
# (long side, short side) the images are resized to, keeping their aspect ratio. COCO's 1333x800
# suits photos of several hundred pixels; small images: about their own size, e.g. (128, 128), so
# that objects keep at least ~32 px (RetinaNet's smallest anchors) without wasting time.
image_scale = (1333, 800)
# The schedule is counted in epochs, so it grows with the dataset. An iteration is `batch_size`
# images (x GPUs), so one epoch is images / (batch_size x GPUs) iterations: 12 images at batch 2
# give 6 an epoch, 72 in 12 epochs (enough for retinanet_pvt_v2_b0_my_coco_small.py's generated
# shapes; real photos need more epochs, and more data).
max_epochs = 12
batch_size = 2
# Linear warm-up over the first iterations (COCO: 500); about 1/10 of the whole run, 1/6 for a run
# of under 100 iterations.
warmup_iters = 500
# Epochs between validations (and checkpoints, the last 3 kept): 1 on COCO, more on a small dataset.
eval_every = 1
# AdamW learning rate at `batch_size` images per GPU. 1e-4 at 16 images per step is the PVT
# papers' COCO fine-tuning recipe (pass --auto-scale-lr for smaller batches). From scratch, use a
# higher one, 3e-4 (as tools/demo.py), without --auto-scale-lr.
lr = 1e-4
# AdamW's betas. beta2 0.999 averages the squared gradients over about 1000 steps (the PVT recipe, for
# COCO's 90k); a run of under a few hundred steps: (0.9, 0.98), about 50 steps, which keeps up with the
# gradients as they grow from scratch (docs/get_started.md section 5 has the measurements).
adam_betas = (0.9, 0.999)
# ImageNet weights of the backbone: the official URL (downloaded once), a local .pth file
# (offline machines), or None to train from scratch (fine for simple images, weak on photos).
pretrained = 'https://github.com/whai362/PVT/releases/download/v2/pvt_v2_b0.pth'
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

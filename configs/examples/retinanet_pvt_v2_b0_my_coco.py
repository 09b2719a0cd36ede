# Example: RetinaNet-PVTv2-B0 on your own COCO-format dataset (docs/get_started.md). Copy this
# file anywhere, then change the paths, the class names and num_classes. Expected files:
#   data/my_dataset/annotations/train.json   data/my_dataset/images/train/*.jpg
#   data/my_dataset/annotations/val.json     data/my_dataset/images/val/*.jpg
# `classes` are the `name`s of the JSON's `categories`, in the order you want as labels 0..n-1.
_base_ = '../retinanet_pvt_v2_b0_fpn.py'

data_root = 'data/my_dataset/'
metainfo = dict(classes=('cat', 'dog'))

train_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/train.json',
        data_prefix=dict(img='images/train/')))
val_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/val.json',
        data_prefix=dict(img='images/val/')))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/val.json')
test_evaluator = val_evaluator

model = dict(bbox_head=dict(num_classes=2))

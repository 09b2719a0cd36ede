# SegFormer (Xie et al., NeurIPS 2021), MiT-b0, Cityscapes: 1024x1024 crops, 160k iterations at batch 8
# (8 GPUs x 1), sliding-window test (1024x1024 windows, stride 768). mmseg's own
# segformer_mit-b0_8xb1-160k_cityscapes-1024x1024.py value for value, with pvt_det's PVTv2 running the MiT encoder
# (same weights, same outputs: mmseg's and NVlabs' MiT files convert as they load; docs/segformer.md).
# mmseg SegFormer zoo (segformer/metafile.yaml), Cityscapes val mIoU (single scale): 76.54.
_base_ = ['mmseg::segformer/segformer_mit-b0_8xb1-160k_cityscapes-1024x1024.py', './_base_/models/pvt_backbones.py']
# mmseg's MixVisionTransformer -> PVTv2 with the same arch, from the same ImageNet file
model = dict(backbone=dict(_base_.mit_b0_backbone, _delete_=True))

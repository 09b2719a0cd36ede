# SegFormer (Xie et al., NeurIPS 2021), MiT-b1, Cityscapes: 1024x1024 crops, 160k iterations at batch 8
# (8 GPUs x 1), sliding-window test (1024x1024 windows, stride 768). mmseg's own
# segformer_mit-b1_8xb1-160k_cityscapes-1024x1024.py value for value, with pvt_det's PVTv2 running the MiT encoder
# (same weights, same outputs: mmseg's and NVlabs' MiT files convert as they load; docs/segformer.md).
# mmseg SegFormer zoo (segformer/metafile.yaml), Cityscapes val mIoU (single scale): 78.56.
_base_ = ['mmseg::segformer/segformer_mit-b1_8xb1-160k_cityscapes-1024x1024.py', './_base_/models/pvt_backbones.py']
# mmseg's MixVisionTransformer -> PVTv2 with the same arch, from the same ImageNet file
model = dict(
    backbone=dict(_base_.mit_b0_backbone, _delete_=True, arch='mit_b1',
                  init_cfg=dict(type='Pretrained', checkpoint='https://download.openmmlab.com/mmsegmentation/v0.5/'
                                'pretrain/segformer/mit_b1_20220624-02e5a6a1.pth')))

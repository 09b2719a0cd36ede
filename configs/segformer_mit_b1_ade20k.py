# SegFormer (Xie et al., NeurIPS 2021), MiT-b1, ADE20K: 512x512 crops, 160k iterations at batch 16
# (8 GPUs x 2), whole-image test. mmseg's own
# segformer_mit-b1_8xb2-160k_ade20k-512x512.py value for value, with pvt_det's PVTv2 running the MiT encoder
# (same weights, same outputs: mmseg's and NVlabs' MiT files convert as they load; docs/segformer.md).
# mmseg SegFormer zoo (segformer/metafile.yaml), ADE20K val mIoU (single scale): 40.97.
_base_ = ['mmseg::segformer/segformer_mit-b1_8xb2-160k_ade20k-512x512.py', './_base_/models/pvt_backbones.py']
# mmseg's MixVisionTransformer -> PVTv2 with the same arch, from the same ImageNet file
model = dict(
    backbone=dict(_base_.mit_b0_backbone, _delete_=True, arch='mit_b1',
                  init_cfg=dict(type='Pretrained', checkpoint='https://download.openmmlab.com/mmsegmentation/v0.5/'
                                'pretrain/segformer/mit_b1_20220624-02e5a6a1.pth')))

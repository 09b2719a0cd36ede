# GLPN with a PVTv2-B0 encoder on NYU Depth V2: GLPN's recipe (glpn_mit_b4_nyu.py) with the backbone swapped.
_base_ = './glpn_mit_b4_nyu.py'
model = dict(
    backbone=dict(
        arch='b0',
        init_cfg=dict(checkpoint='https://github.com/whai362/PVT/releases/download/v2/pvt_v2_b0.pth')),
    decode_head=dict(in_channels=[32, 64, 160, 256]))

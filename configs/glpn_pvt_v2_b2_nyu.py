# GLPN with a PVTv2-B2 encoder on NYU Depth V2: GLPN's recipe (glpn_mit_b4_nyu.py) with the backbone swapped.
# PVTv2-B2 has MiT-b2's widths (64, 128, 320, 512), so the decoder is unchanged.
_base_ = './glpn_mit_b4_nyu.py'
model = dict(
    backbone=dict(
        arch='b2',
        init_cfg=dict(checkpoint='https://github.com/whai362/PVT/releases/download/v2/pvt_v2_b2.pth')))

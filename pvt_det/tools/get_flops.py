"""Parameters and FLOPs of a config's model, or of a classifier/backbone by name, via mmengine.analysis.

FLOPs follow the papers and mmengine: one multiply-add counts as one FLOP, attention matmuls included
(:mod:`pvt_det.benchmark.flops`).

Examples::

    python tools/get_flops.py pvt_v2_b2                        # classifier at 224x224: ~4.0 G
    python tools/get_flops.py pvt_small --shape 800 1216
    python tools/get_flops.py configs/retinanet_pvt_v2_b2_fpn.py --shape 800 1216
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys

from pvt_det.benchmark.flops import build_model, count_flops
from pvt_det.cli import cli_main


@cli_main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='config file, or a model name such as pvt_small, pvt_v2_b2, cvt_13')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='input size (default 224 224 for a model name, 800 1216 for a config)')
    parser.add_argument('--backbone-only', action='store_true', help='count the backbone alone')
    args = parser.parse_args(argv)
    shape = tuple(args.shape or ((800, 1216) if osp.isfile(args.config) else (224, 224)))
    model, what = build_model(args.config, shape, args.backbone_only)
    flops, params = count_flops(model, (3, *shape))
    print(f'{what} at {shape[0]}x{shape[1]}: {params / 1e6:.2f} M parameters, {flops / 1e9:.2f} GFLOPs '
          '(multiply-adds, attention matmuls included)')
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""Rewrite a checkpoint into pvt_det's layout: a classifier or backbone file, or a whole detector/segmentor.

    python tools/convert_weights.py SRC DST [--arch pvt_v2_b2] [--backbone-only] [--overwrite]

SRC may be an official whai362 release (classification, detection or Semantic FPN), a Hugging Face
``.bin``/``.safetensors``, a timm or mmdet checkpoint, or ours; the layout and (without ``--arch``) the
architecture are detected. A detector/segmentor keeps its neck, heads and ``meta``; ``--backbone-only`` writes just
the backbone, for ``init_cfg=dict(type='Pretrained', checkpoint=DST)``. DST ending in ``.safetensors`` writes
safetensors (classifier and backbone files).
"""
from __future__ import annotations

import argparse
import sys

from ..cli import cli_main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='source checkpoint file (or URL)')
    parser.add_argument('dst', help='destination file (.pth, or .safetensors)')
    parser.add_argument('--arch',
                        help='classifier name, e.g. pvt_small or pvt_v2_b2 (default: detect)')
    parser.add_argument('--backbone-only', action='store_true',
                        help='write only the backbone (of a classifier or a trained detector/segmentor), '
                        "loadable by init_cfg=dict(type='Pretrained', checkpoint=DST)")
    parser.add_argument('--overwrite', action='store_true', help='replace DST if it exists')
    return parser.parse_args(argv)


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from pvt_det.models.conversion import convert_checkpoint_file
    report = convert_checkpoint_file(args.src, args.dst, args.arch, overwrite=args.overwrite,
                                     backbone_only=args.backbone_only)
    arch = report.arch or 'custom arch'
    print(f'wrote {report.path}: {report.kind} checkpoint ({arch}), {len(report.keys)} tensors, backbone '
          f'converted from {args.src} ({report.layout} layout)')
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""Rewrite a PVT/PVTv2 (or any registered family's) checkpoint into pvt_det's layout.

    python tools/convert_weights.py SRC DST [--arch pvt_v2_b2] [--overwrite]

SRC may be an official release, a Hugging Face ``.bin``/``.safetensors``, an mmdet checkpoint or ours; the
layout and (without ``--arch``) the architecture are detected. DST ending in ``.safetensors`` writes safetensors.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from pvt_det.cli import cli_main  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='source checkpoint file (or URL)')
    parser.add_argument('dst', help='destination file (.pth, or .safetensors)')
    parser.add_argument('--arch',
                        help='classifier name, e.g. pvt_small or pvt_v2_b2 (default: detect)')
    parser.add_argument('--overwrite', action='store_true', help='replace DST if it exists')
    return parser.parse_args(argv)


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from pvt_det.models.checkpoint import convert_checkpoint_file
    report = convert_checkpoint_file(args.src, args.dst, args.arch, overwrite=args.overwrite)
    print(f'wrote {report.path}: {len(report.loaded_keys)} tensors converted from {args.src} '
          f'({report.layout} layout)')
    return 0


if __name__ == '__main__':
    sys.exit(main())

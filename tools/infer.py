"""Predict one image and draw the result with mmdet's / mmseg's visualizer.

    python tools/infer.py IMAGE CONFIG CHECKPOINT --out-dir DIR [--score-thr 0.3] [--device cpu]

Writes DIR/<image>_pred.jpg (drawn) and DIR/<image>_pred.json (boxes, scores, classes and masks
as COCO RLE; for segmentation, the classes present and DIR/<image>_pred.png, the label map).
"""
import argparse
import sys

from pvt_det import tools_common  # imports pvt_det first: compat fixes, backbones
from pvt_det.cli import cli_main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Draw and save the predictions for one image')
    parser.add_argument('image', help='image file')
    parser.add_argument('config', help='config file the checkpoint was trained with')
    parser.add_argument('checkpoint', help='checkpoint file (.pth)')
    parser.add_argument('--out-dir', required=True, help='directory for the drawing and the JSON')
    parser.add_argument('--device', default='cpu', help='cpu or cuda:0')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='detection: keep boxes scoring at least this')
    parser.add_argument('--cfg-options', nargs='+', action=tools_common.DictAction, metavar='KEY=VALUE',
                        help='override config values')
    return parser.parse_args(argv)


@cli_main
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    paths = tools_common.infer(args.image, args.config, args.checkpoint, args.out_dir,
                               device=args.device, score_thr=args.score_thr,
                               cfg_options=args.cfg_options)
    for kind, path in paths.items():
        print(f'{kind}: {path}')


if __name__ == '__main__':
    sys.exit(main())

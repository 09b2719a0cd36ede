"""Evaluate a checkpoint on a config's test set (COCO AP for mmdet configs, mIoU for mmseg ones).

    python tools/test.py configs/retinanet_pvt_small_fpn.py work_dirs/.../epoch_12.pth
        [--out results.pkl] [--show-dir DIR] [--tta] [--work-dir DIR] [--cfg-options ...]

Prints one ``name: value`` line per metric at the end (e.g. ``bbox_mAP: 0.4040``).
"""
import argparse
import sys

from pvt_det import tools_common  # imports pvt_det first: compat fixes, backbones
from pvt_det.cli import cli_main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a pvt_det detection or segmentation checkpoint')
    parser.add_argument('config', help='config file the checkpoint was trained with')
    parser.add_argument('checkpoint', help='checkpoint file (.pth) written by tools/train.py')
    parser.add_argument('--out', help='detection: dump predictions to this .pkl file; '
                        'segmentation: write predicted label maps into this directory')
    parser.add_argument('--show-dir', help='draw predictions into this directory (detection: '
                        'relative to <work_dir>/<timestamp>/)')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation (flip for '
                        "detection, the config's multi-scale + flip for segmentation)")
    return tools_common.parse_with_common_args(parser, argv)


@cli_main
def main(argv: list[str] | None = None) -> None:
    tools_common.test(parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())

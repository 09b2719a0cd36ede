"""Train a detector (mmdet config) or a segmentor (mmseg config) with mmdet's tools/train.py flags.

    python tools/train.py configs/retinanet_pvt_small_fpn.py [--work-dir DIR] [--amp]
        [--auto-scale-lr] [--resume [CHECKPOINT]] [--cfg-options KEY=VALUE ...]
"""
import argparse
import sys

from pvt_det import tools_common  # imports pvt_det first: compat fixes, backbones
from pvt_det.cli import cli_main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a pvt_det detection or segmentation config')
    parser.add_argument('config', help='config file, e.g. configs/retinanet_pvt_small_fpn.py')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision: float16 on CUDA, bfloat16 autocast on the CPU')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale lr to the actual total batch size (see auto_scale_lr in the config)')
    parser.add_argument('--resume', nargs='?', type=str, const='auto', metavar='CHECKPOINT',
                        help='resume from CHECKPOINT, or without a value from the latest '
                        'checkpoint in the work dir')
    return tools_common.parse_with_common_args(parser, argv)


@cli_main
def main(argv: list[str] | None = None) -> None:
    tools_common.train(parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())

"""Train a detector (mmdet config) or a segmentor (mmseg config) with mmdet's tools/train.py flags.

    python tools/train.py configs/retinanet_pvt_small_fpn.py [--work-dir DIR] [--amp]
        [--auto-scale-lr] [--resume [CHECKPOINT]] [--cfg-options KEY=VALUE ...]
"""
from __future__ import annotations

import argparse
import sys

from mmengine.config import Config

from pvt_det.cli import cli_main
from pvt_det.tools.args import parse_with_common_args
from pvt_det.config.loading import load_config, register_scope
from pvt_det.tools.run_options import adapt_to_machine, enable_amp, enable_auto_scale_lr, set_work_dir
from pvt_det.config.preflight import check_checkpoint, check_config, check_dataset_paths
from pvt_det.config.dataset_contents import check_dataset_contents
from pvt_det.config.unused_keys import check_settings_take_effect
from pvt_det.tools.runner import build_runner


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a pvt_det detection or segmentation config')
    parser.add_argument('config', help='config file, e.g. configs/retinanet_pvt_small_fpn.py')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision: float16 on CUDA, bfloat16 autocast on the CPU')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale lr to the actual total batch size (see auto_scale_lr in the config)')
    parser.add_argument('--resume', nargs='?', type=str, const='auto', metavar='CHECKPOINT',
                        help='resume from CHECKPOINT, or without a value from the latest '
                        'checkpoint in the work dir')
    return parse_with_common_args(parser, argv)


def prepare_train_config(args: argparse.Namespace) -> Config:
    """The config tools/train.py runs: file + ``--cfg-options`` + flags, checked for missing paths."""
    cfg = load_config(args.config, args.cfg_options)
    # A setting the file had already copied elsewhere at parse time would be silently ignored.
    check_settings_take_effect(args.config, cfg, args.cfg_options)
    register_scope(cfg)
    cfg.launcher = args.launcher
    set_work_dir(cfg, args.config, args.work_dir)
    if args.amp:
        enable_amp(cfg)
    if args.auto_scale_lr:
        enable_auto_scale_lr(cfg)
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        check_checkpoint(args.resume, 'checkpoint to resume from')
        cfg.resume = True
        cfg.load_from = args.resume
    adapt_to_machine(cfg)
    # Atomic checkpoints, exact mid-epoch resume, stop at the first NaN loss (pvt_det.engine).
    from pvt_det.engine import prepare_training_config
    prepare_training_config(cfg)
    loaders = ('train_dataloader', 'val_dataloader') if cfg.get('val_cfg') else ('train_dataloader',)
    check_dataset_paths(cfg, loaders)
    check_config(cfg, loaders)  # class counts, widths, strides, annotation files: before any data
    check_dataset_contents(cfg, loaders)  # no images, undecodable ones, nothing to learn from
    return cfg


def train(args: argparse.Namespace) -> dict:
    """Train as mmdet's/mmseg's tools/train.py; returns the last validation metrics (if any)."""
    runner = build_runner(prepare_train_config(args))
    runner.train()
    # mmengine's RuntimeInfoHook keeps each validation's metrics as 'val/<name>' scalars.
    return {key[len('val/'):]: buffer.current()
            for key, buffer in runner.message_hub.log_scalars.items() if key.startswith('val/')}


@cli_main
def main(argv: list[str] | None = None) -> None:
    train(parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())

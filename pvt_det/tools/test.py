"""Evaluate a checkpoint on a config's test set (COCO AP for mmdet configs, mIoU for mmseg ones, depth
metrics -- d1 d2 d3 abs_rel sq_rel rmse rmse_log log10 silog -- for mmseg's DepthEstimator).

    python tools/test.py configs/retinanet_pvt_small_fpn.py work_dirs/.../epoch_12.pth
        [--out results.pkl] [--show-dir DIR] [--tta] [--work-dir DIR] [--cfg-options ...]

Prints one ``name: value`` line per metric at the end (e.g. ``bbox_mAP: 0.4040``).
"""
from __future__ import annotations

import argparse
import sys
from copy import deepcopy

from mmengine.config import Config, ConfigDict

from pvt_det.cli import ToolError, cli_main
from pvt_det.engine import require_exact_checkpoint
from pvt_det.tools.args import parse_with_common_args
from pvt_det.config.loading import load_config, register_scope, task_of
from pvt_det.tools.run_options import adapt_to_machine, set_work_dir
from pvt_det.config.preflight import check_checkpoint, check_config, check_dataset_paths, innermost_dataset
from pvt_det.config.dataset_contents import check_dataset_contents
from pvt_det.config.unused_keys import check_settings_take_effect
from pvt_det.tools.runner import build_runner


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a pvt_det detection or segmentation checkpoint')
    parser.add_argument('config', help='config file the checkpoint was trained with')
    parser.add_argument('checkpoint', help='checkpoint file (.pth) written by tools/train.py')
    parser.add_argument('--out', help='detection: dump predictions to this .pkl file; '
                        'segmentation: write predicted label maps into this directory '
                        '(depth: 16-bit PNGs in millimetres)')
    parser.add_argument('--show-dir', help='draw predictions into this directory (detection: '
                        'relative to <work_dir>/<timestamp>/)')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation (flip for '
                        "detection, the config's multi-scale + flip for segmentation)")
    return parse_with_common_args(parser, argv)


def prepare_test_config(args: argparse.Namespace) -> Config:
    """The config tools/test.py runs: checkpoint, ``--show-dir``, ``--tta`` and ``--out`` wired in."""
    cfg = load_config(args.config, args.cfg_options)
    # A setting the file had already copied elsewhere at parse time would be silently ignored.
    check_settings_take_effect(args.config, cfg, args.cfg_options)
    task = register_scope(cfg)
    cfg.launcher = args.launcher
    set_work_dir(cfg, args.config, args.work_dir)
    check_checkpoint(args.checkpoint)
    cfg.load_from = args.checkpoint
    # Any backbone layout is converted; a file that does not fit the model stops the run before evaluating.
    require_exact_checkpoint(cfg)
    # The trained weights replace the backbone's pretrained ones; don't download those.
    if 'backbone' in cfg.model:
        cfg.model.backbone.init_cfg = None
    if args.show_dir:
        _draw_test_predictions(cfg, task, args.show_dir)
    if args.tta:
        _use_tta(cfg, task)
    if args.out and task == 'det' and not args.out.endswith(('.pkl', '.pickle')):
        raise ToolError(f'--out {args.out}: detection predictions are dumped as a pickle; '
                        'use a file name ending in .pkl')
    if args.out and task == 'seg':
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True
        if cfg.test_evaluator.get('type') == 'DepthMetric':  # depth maps: 16-bit PNGs in millimetres, as NYU's
            cfg.test_evaluator['depth_scale_factor'] = 1000.0
    adapt_to_machine(cfg)
    check_dataset_paths(cfg, ('test_dataloader',))
    check_config(cfg, ('test_dataloader',))
    check_dataset_contents(cfg, ('test_dataloader',))
    return cfg


def test(args: argparse.Namespace) -> dict:
    """Evaluate a checkpoint as mmdet's/mmseg's tools/test.py; prints and returns the metrics."""
    cfg = prepare_test_config(args)
    runner = build_runner(cfg)
    if args.out and task_of(cfg) == 'det':
        from mmdet.evaluation import DumpDetResults
        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))
    metrics = runner.test()
    if not metrics:  # an evaluation that measured nothing is a failure, not a result
        raise ToolError('no metrics: the model predicted nothing above its score threshold '
                        '(model.test_cfg score_thr), e.g. after too little training; the log is in '
                        f'{cfg.work_dir}')
    from mmengine.dist import is_main_process
    if is_main_process():
        print_metrics(metrics)
    return metrics


def print_metrics(metrics: dict) -> None:
    """One ``name: value`` line per metric, e.g. ``bbox_mAP: 0.4170`` or ``mIoU: 37.21``."""
    for name, value in metrics.items():
        short = name.split('/')[-1]
        if isinstance(value, float):
            print(f'{short}: {value:.4f}')
        elif not isinstance(value, str):
            print(f'{short}: {value}')


def _draw_test_predictions(cfg: Config, task: str, show_dir: str) -> None:
    hooks = cfg.get('default_hooks', {})
    if 'visualization' not in hooks:
        raise ToolError('--show-dir needs default_hooks.visualization in the config '
                        "(dict(type='DetVisualizationHook') or dict(type='SegVisualizationHook'))")
    hooks.visualization.draw = True
    if task == 'det':
        # DetVisualizationHook writes to <work_dir>/<timestamp>/<test_out_dir>.
        hooks.visualization.test_out_dir = show_dir
    else:
        cfg.visualizer.save_dir = show_dir


def _use_tta(cfg: Config, task: str) -> None:
    if task == 'seg':
        if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
            raise ToolError('--tta needs tta_model and tta_pipeline in the config '
                            "(mmseg's _base_/datasets/ade20k.py, which configs/sem_fpn_*.py inherit, defines both)")
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
        return
    # Detection: mmdet's default horizontal-flip TTA unless the config defines its own.
    cfg.setdefault('tta_model', ConfigDict(
        type='DetTTAModel', tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100)))
    if 'tta_pipeline' not in cfg:
        dataset = innermost_dataset(cfg.test_dataloader.dataset)
        pipeline = deepcopy(dataset.pipeline)
        pipeline[-1] = dict(
            type='TestTimeAug',
            transforms=[[dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)],
                        [dict(type='PackDetInputs',
                              meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                         'scale_factor', 'flip', 'flip_direction'))]])
        cfg.tta_pipeline = pipeline
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline


@cli_main
def main(argv: list[str] | None = None) -> None:
    test(parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())

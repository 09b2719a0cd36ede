"""What tools/train.py, tools/test.py, tools/infer.py and tools/demo.py share.

One code path serves mmdet (detection) and mmseg (segmentation) configs: the registry scope
comes from the config's ``default_scope``. The tools stay thin argument parsers over
:func:`train`, :func:`test` and :func:`infer`; :func:`pvt_det.cli.cli_main` turns any failure into
one line on stderr and a non-zero exit status (``PVT_DET_DEBUG=1`` shows the full traceback).
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
from contextlib import contextmanager
from copy import deepcopy
from pathlib import Path
from typing import Any, Iterator

import pvt_det  # noqa: F401  (compat fixes + backbone registration before anything is built)
import torch
from mmengine.config import Config, ConfigDict, DictAction
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS

from .cli import ToolError  # noqa: F401  (re-exported: the tools raise it)

TASKS = {'mmdet': 'det', 'mmseg': 'seg'}
_LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
_LAYOUT_HINT = {
    'det': 'COCO layout: <data_root>/annotations/instances_{train,val}2017.json and '
           '<data_root>/{train,val}2017/*.jpg (docs/get_started.md)',
    'seg': 'ADE20K layout: <data_root>/images/{training,validation}/*.jpg and '
           '<data_root>/annotations/{training,validation}/*.png (docs/segmentation.md)',
}


# ----------------------------------------------------------------------------- CLI plumbing
def parse_with_common_args(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse ``argv`` with mmdet's common flags added to ``parser`` (``--work-dir``, ``--cfg-options``,
    ``--launcher``, ``--local_rank``); exports ``LOCAL_RANK`` for launchers that pass only the flag."""
    _add_common_args(parser)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def _add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--work-dir', help='directory for logs, checkpoints and metrics '
                        '(default: work_dirs/<config name>)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config values, e.g. train_dataloader.batch_size=4 '
                        'model.backbone.init_cfg=None; lists as key="[a,b]" (no spaces)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher (tools/dist_*.sh pass pytorch)')
    # torch.distributed.launch passes --local-rank (torch>=2) or --local_rank (older).
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0,
                        help=argparse.SUPPRESS)


# ----------------------------------------------------------------------------- configs
def load_config(path: str | Path, cfg_options: dict | None = None) -> Config:
    """Read a config file, apply ``--cfg-options`` and check its scope is mmdet or mmseg."""
    path = Path(path)
    if not path.is_file():
        raise ToolError(f'config file not found: {path}. Pass a config path such as '
                        'configs/retinanet_pvt_small_fpn.py or configs/sem_fpn_pvt_v2_b0_ade20k.py')
    cfg = Config.fromfile(str(path))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    task_of(cfg)  # fail early on a config neither mmdet nor mmseg can run
    return cfg


def task_of(cfg: Config) -> str:
    """``'det'`` for an mmdet config, ``'seg'`` for an mmseg one (from ``default_scope``)."""
    scope = cfg.get('default_scope')
    if scope not in TASKS:
        raise ToolError(f"config has default_scope={scope!r}; pvt_det's tools run configs with "
                        "default_scope='mmdet' (detection) or 'mmseg' (segmentation): inherit "
                        "one of the configs in configs/")
    return TASKS[scope]


def register_scope(cfg: Config) -> str:
    """Register the config's OpenMMLab package and make its scope the default one."""
    task = task_of(cfg)
    if task == 'det':
        from mmdet.utils import register_all_modules
    else:
        from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    check_backbone_type(cfg)
    return task


def check_backbone_type(cfg: Config) -> None:
    """Fail with the closest registered names when ``model.backbone.type`` is unknown."""
    import difflib

    from mmengine.registry import DefaultScope
    backbone = (cfg.get('model') or {}).get('backbone')
    name = backbone.get('type') if isinstance(backbone, dict) else None
    if not isinstance(name, str):
        return
    if task_of(cfg) == 'det':
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        if MODELS.get(name) is not None:
            return
    close = difflib.get_close_matches(name, list(MODELS.module_dict), n=3, cutoff=0.6)
    raise ToolError(f'unknown backbone type {name!r} (model.backbone.type): '
                    + (f'did you mean {" or ".join(map(repr, close))}? ' if close else '')
                    + "pvt_det's backbones are 'PVT', 'PVTv2' and 'CvT'; other models must be "
                    "registered by a module listed in the config's custom_imports")


def set_work_dir(cfg: Config, config_path: str | Path, work_dir: str | None) -> None:
    """CLI ``--work-dir`` > ``work_dir`` in the config > ``work_dirs/<config name>``."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', Path(config_path).stem)


def adapt_to_machine(cfg: Config) -> None:
    """Make a GPU-cluster config run on this machine when it has no CUDA.

    NCCL and SyncBN need CUDA: distributed runs fall back to the gloo backend and SyncBN to BN
    (mmengine already reverts SyncBN for single-process runs), and mixed precision uses bfloat16
    autocast on the CPU.
    """
    if torch.cuda.is_available():
        return
    cfg.setdefault('env_cfg', ConfigDict())
    cfg.env_cfg.setdefault('dist_cfg', ConfigDict())
    cfg.env_cfg.dist_cfg.backend = 'gloo'
    cfg.model = _replace_sync_bn(cfg.model)
    if cfg.get('launcher', 'none') != 'none' and cfg.get('model_wrapper_cfg') is None:
        # mmengine's default DDP wrapper pins device_ids=[LOCAL_RANK], a CUDA device.
        cfg.model_wrapper_cfg = ConfigDict(
            type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper = cfg.get('optim_wrapper')
    if wrapper is not None and wrapper.get('type') == 'AmpOptimWrapper':
        _use_cpu_amp(wrapper)


def _replace_sync_bn(node: Any) -> Any:
    if isinstance(node, dict):
        out = type(node)({k: _replace_sync_bn(v) for k, v in node.items()})
        if out.get('type') == 'SyncBN':
            out['type'] = 'BN'
        return out
    if isinstance(node, (list, tuple)):
        return type(node)(_replace_sync_bn(v) for v in node)
    return node


# ----------------------------------------------------------------------------- AMP on CPU
@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """Mixed precision on the CPU: the forward pass runs under bfloat16 autocast.

    mmengine's ``AmpOptimWrapper`` refuses to start without CUDA. bfloat16 keeps float32's
    exponent range, so unlike float16 it needs no loss scaling: backward and step are plain.
    Convolutions whose input is smaller than their kernel (RetinaNet's P7 conv on a 1x1 P6 map,
    i.e. images up to 64 px) run in float32: oneDNN's bfloat16 weight gradient for them is often
    NaN (torch 2.13), and they cost nothing.
    """

    def __init__(self, dtype: str | torch.dtype = 'bfloat16', loss_scale: Any = None, **kwargs):
        super().__init__(**kwargs)
        self.cast_dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        if self.cast_dtype != torch.bfloat16:
            raise ValueError(f'CPU autocast supports only bfloat16, got dtype={dtype!r}')

    @contextmanager
    def optim_context(self, model: torch.nn.Module) -> Iterator[None]:
        guard_tiny_convs(model)
        with super().optim_context(model), torch.autocast('cpu', dtype=self.cast_dtype):
            yield


def guard_tiny_convs(model: torch.nn.Module) -> None:
    """Run each Conv2d in float32 while its input is smaller than its kernel (see CPUAmpOptimWrapper)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d) and not hasattr(module, '_pvt_det_autocast_paused'):
            module._pvt_det_autocast_paused = False
            module.register_forward_pre_hook(_pause_autocast_if_tiny)
            module.register_forward_hook(_resume_autocast)


def _pause_autocast_if_tiny(module: torch.nn.Conv2d, args: tuple) -> tuple | None:
    x = args[0]
    tiny = x.dim() == 4 and (x.shape[-2] < module.kernel_size[0] or x.shape[-1] < module.kernel_size[1])
    if tiny and torch.is_autocast_enabled('cpu'):
        torch.set_autocast_enabled('cpu', False)
        module._pvt_det_autocast_paused = True
        return (x.float(), *args[1:])
    return None


def _resume_autocast(module: torch.nn.Conv2d, args: tuple, output: torch.Tensor) -> None:
    if module._pvt_det_autocast_paused:
        module._pvt_det_autocast_paused = False
        torch.set_autocast_enabled('cpu', True)


def _use_cpu_amp(wrapper: ConfigDict) -> None:
    wrapper.type = 'CPUAmpOptimWrapper'
    wrapper.pop('loss_scale', None)
    wrapper.dtype = 'bfloat16'


def enable_amp(cfg: Config) -> None:
    """``--amp``: float16 with dynamic loss scaling on CUDA, bfloat16 autocast on the CPU."""
    if torch.cuda.is_available():
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    else:
        _use_cpu_amp(cfg.optim_wrapper)


def enable_auto_scale_lr(cfg: Config) -> None:
    """``--auto-scale-lr``: scale lr by (world size x batch size) / ``auto_scale_lr.base_batch_size``."""
    scaling = cfg.get('auto_scale_lr')
    if not scaling or 'base_batch_size' not in scaling:
        raise ToolError('--auto-scale-lr needs auto_scale_lr = dict(enable=False, '
                        'base_batch_size=N) in the config (N = the batch the lr was tuned for)')
    scaling.enable = True


# ----------------------------------------------------------------------------- path checks
def _innermost_dataset(dataset: dict) -> dict:
    # Wrappers (RepeatDataset, ClassBalancedDataset, ...) hold the real dataset under `dataset`.
    while isinstance(dataset.get('dataset'), dict):
        dataset = dataset['dataset']
    return dataset


def _is_local(path: str) -> bool:
    return '://' not in path


def _join(root: str | None, path: str) -> str:
    return path if (not root or osp.isabs(path)) else osp.join(root, path)


def check_dataset_paths(cfg: Config, loaders: tuple[str, ...]) -> None:
    """Fail with the path to fix when a dataloader's files are missing (local paths only)."""
    hint = _LAYOUT_HINT[task_of(cfg)]
    for loader in loaders:
        loader_cfg = cfg.get(loader)
        if not loader_cfg or 'dataset' not in loader_cfg:
            continue
        dataset = _innermost_dataset(loader_cfg.dataset)
        data_root = dataset.get('data_root')
        key = f'{loader}.dataset'
        if data_root and _is_local(data_root) and not osp.isdir(data_root):
            raise ToolError(f'dataset not found: data_root {data_root!r} ({key}.data_root) does not '
                            f'exist. Put the data there ({hint}) or point the config at yours, '
                            f'e.g. --cfg-options {key}.data_root=path/to/data')
        ann_file = dataset.get('ann_file')
        if ann_file:
            path = _join(data_root, ann_file)
            if _is_local(path) and not osp.isfile(path):
                raise ToolError(f'dataset annotation file not found: {path} ({key}.ann_file). '
                                f'Expected {hint}; or set {key}.ann_file')
        for name, prefix in (dataset.get('data_prefix') or {}).items():
            path = _join(data_root, prefix)
            if prefix and _is_local(path) and not osp.isdir(path):
                raise ToolError(f'dataset folder not found: {path} ({key}.data_prefix.{name}). '
                                f'Expected {hint}; or set {key}.data_prefix')
    for evaluator in ('val_evaluator', 'test_evaluator'):
        split = 'val_dataloader' if evaluator == 'val_evaluator' else 'test_dataloader'
        metrics = cfg.get(evaluator)
        if split not in loaders or not metrics:
            continue
        for metric in metrics if isinstance(metrics, (list, tuple)) else [metrics]:
            ann_file = metric.get('ann_file')
            if ann_file and _is_local(ann_file) and not osp.isfile(ann_file):
                raise ToolError(f'evaluation annotation file not found: {ann_file} '
                                f'({evaluator}.ann_file). Set it to the same file as '
                                f'{split}.dataset.ann_file (with its data_root)')


def check_checkpoint(path: str, what: str = 'checkpoint') -> None:
    if _is_local(path) and not osp.isfile(path):
        raise ToolError(f'{what} not found: {path}. Pass a .pth file that tools/train.py wrote, '
                        'e.g. work_dirs/<config name>/epoch_12.pth')


# ----------------------------------------------------------------------------- train / test
def build_runner(cfg: Config):
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)


def prepare_train_config(args: argparse.Namespace) -> Config:
    """The config tools/train.py runs: file + ``--cfg-options`` + flags, checked for missing paths."""
    cfg = load_config(args.config, args.cfg_options)
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
    return cfg


def train(args: argparse.Namespace) -> dict:
    """Train as mmdet's/mmseg's tools/train.py; returns the last validation metrics (if any)."""
    runner = build_runner(prepare_train_config(args))
    runner.train()
    # mmengine's RuntimeInfoHook keeps each validation's metrics as 'val/<name>' scalars.
    return {key[len('val/'):]: buffer.current()
            for key, buffer in runner.message_hub.log_scalars.items() if key.startswith('val/')}


def prepare_test_config(args: argparse.Namespace) -> Config:
    """The config tools/test.py runs: checkpoint, ``--show-dir``, ``--tta`` and ``--out`` wired in."""
    cfg = load_config(args.config, args.cfg_options)
    task = register_scope(cfg)
    cfg.launcher = args.launcher
    set_work_dir(cfg, args.config, args.work_dir)
    check_checkpoint(args.checkpoint)
    cfg.load_from = args.checkpoint
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
    adapt_to_machine(cfg)
    check_dataset_paths(cfg, ('test_dataloader',))
    return cfg


def test(args: argparse.Namespace) -> dict:
    """Evaluate a checkpoint as mmdet's/mmseg's tools/test.py; prints and returns the metrics."""
    cfg = prepare_test_config(args)
    runner = build_runner(cfg)
    if args.out and task_of(cfg) == 'det':
        from mmdet.evaluation import DumpDetResults
        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))
    metrics = runner.test()
    from mmengine.dist import is_main_process
    if is_main_process():
        print_metrics(metrics)
    return metrics


def print_metrics(metrics: dict) -> None:
    """One ``name: value`` line per metric, e.g. ``bbox_mAP: 0.4170`` or ``mIoU: 37.21``."""
    if not metrics:
        print('no metrics: the model predicted nothing above its score threshold '
              '(model.test_cfg score_thr), e.g. after too little training')
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
                            '(configs/_base_/datasets/ade20k.py defines both)')
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
        return
    # Detection: mmdet's default horizontal-flip TTA unless the config defines its own.
    cfg.setdefault('tta_model', ConfigDict(
        type='DetTTAModel', tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100)))
    if 'tta_pipeline' not in cfg:
        dataset = _innermost_dataset(cfg.test_dataloader.dataset)
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


# ----------------------------------------------------------------------------- inference
def infer(image: str, config: str, checkpoint: str, out_dir: str, device: str = 'cpu',
          score_thr: float = 0.3, cfg_options: dict | None = None) -> dict[str, Path]:
    """Predict one image; write ``<stem>_pred.jpg`` (drawn) and ``<stem>_pred.json`` to ``out_dir``.

    Detection JSON: one entry per box with ``label``, ``class``, ``score``, ``bbox`` (x1, y1, x2,
    y2 in pixels) and, for Mask R-CNN, ``mask`` as COCO RLE. Segmentation JSON: the classes
    present with their pixel fraction; the label map is also saved as ``<stem>_pred.png``.
    """
    import mmcv
    if not osp.isfile(image):
        raise ToolError(f'image not found: {image}')
    check_checkpoint(checkpoint)
    cfg = load_config(config, cfg_options)
    task = register_scope(cfg)
    adapt_to_machine(cfg)
    if 'backbone' in cfg.model:
        cfg.model.backbone.init_cfg = None  # the checkpoint holds the trained backbone
    img = mmcv.imread(image)
    if img is None:
        raise ToolError(f'cannot read {image} as an image')
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(image).stem
    paths = dict(image=out / f'{stem}_pred.jpg', json=out / f'{stem}_pred.json')
    if task == 'det':
        from mmdet.apis import inference_detector, init_detector
        model = init_detector(cfg, checkpoint, device=device)
        sample = inference_detector(model, img)
        predictions = _detections_to_json(sample, model.dataset_meta['classes'], score_thr)
        visualizer_cfg = dict(cfg.visualizer, name='pvt_det_infer')
    else:
        from mmseg.apis import inference_model, init_model
        model = init_model(cfg, checkpoint, device=device)
        sample = inference_model(model, img)
        label_map = sample.pred_sem_seg.data[0].cpu().numpy().astype('uint8')
        paths['label_map'] = out / f'{stem}_pred.png'
        mmcv.imwrite(label_map, str(paths['label_map']))
        predictions = _segmentation_to_json(label_map, model.dataset_meta['classes'])
        visualizer_cfg = dict(cfg.visualizer, name='pvt_det_infer', save_dir=None)
    from mmengine.registry import VISUALIZERS
    visualizer_cfg.pop('vis_backends', None)  # draw to a file only, no extra backend dirs
    visualizer = VISUALIZERS.build(visualizer_cfg)
    visualizer.dataset_meta = model.dataset_meta
    draw_args = dict(pred_score_thr=score_thr) if task == 'det' else {}
    visualizer.add_datasample(stem, mmcv.bgr2rgb(img), sample, draw_gt=False, show=False,
                              out_file=str(paths['image']), **draw_args)
    paths['json'].write_text(json.dumps(dict(image=image, config=config, checkpoint=checkpoint,
                                             predictions=predictions), indent=1))
    return paths


def _detections_to_json(sample, classes: tuple[str, ...], score_thr: float) -> list[dict]:
    instances = sample.pred_instances
    keep = instances.scores >= score_thr
    instances = instances[keep]
    masks = instances.get('masks')
    results = []
    for index in range(len(instances)):
        label = int(instances.labels[index])
        entry = dict(label=label, **{'class': classes[label]},
                     score=round(float(instances.scores[index]), 4),
                     bbox=[round(float(v), 2) for v in instances.bboxes[index]])
        if masks is not None:
            from pycocotools import mask as mask_utils
            import numpy as np
            rle = mask_utils.encode(np.asfortranarray(masks[index].cpu().numpy().astype('uint8')))
            entry['mask'] = dict(size=rle['size'], counts=rle['counts'].decode('ascii'))
        results.append(entry)
    return results


def _segmentation_to_json(label_map, classes: tuple[str, ...]) -> list[dict]:
    import numpy as np
    labels, counts = np.unique(label_map, return_counts=True)
    order = np.argsort(-counts)
    return [dict(label=int(labels[i]), **{'class': classes[int(labels[i])]},
                 fraction=round(float(counts[i]) / label_map.size, 4)) for i in order]

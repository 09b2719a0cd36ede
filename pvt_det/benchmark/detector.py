"""RetinaNet-PVT-S, ours against mmdet's own config, holding the same weights: a train iteration or an inference."""
from __future__ import annotations

import copy
import os.path as osp
import tempfile
from typing import Callable

import torch

from .archs import BenchmarkError
from .measure import autocast
from .peers import build_backbones

MMDET_RETINANET_PVT_S = 'mmdet::pvt/retinanet_pvt-s_fpn_1x_coco.py'
OUR_RETINANET_PVT_S = 'configs/retinanet_pvt_small_fpn.py'


def load_detector_cfg(path: str):
    from mmengine.config import Config
    if path.startswith('mmdet::'):  # a config shipped inside the mmdet package
        import mmdet
        path = osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs', path[len('mmdet::'):])
    if not osp.exists(path):
        raise BenchmarkError(f'config {path} not found; pass an existing config file to --config/--ref-config')
    return Config.fromfile(path)


def build_detector(path: str) -> torch.nn.Module:
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = load_detector_cfg(path)
    cfg.model.backbone.pop('init_cfg', None)
    cfg.model.backbone.pop('pretrained', None)
    return MODELS.build(cfg.model)


def detector_batch(shape: tuple[int, int], num_boxes: int = 5, seed: int = 0) -> dict:
    """One image and its boxes, in the form the data preprocessor takes."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    gen = torch.Generator().manual_seed(seed)
    h, w = shape
    image = torch.randint(0, 256, (3, h, w), generator=gen, dtype=torch.uint8)
    xy = torch.rand(num_boxes, 2, generator=gen) * torch.tensor([w * 0.6, h * 0.6])
    wh = 32 + torch.rand(num_boxes, 2, generator=gen) * torch.tensor([w * 0.3, h * 0.3])
    sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
                                         scale_factor=(1.0, 1.0), batch_input_shape=(h, w)))
    sample.gt_instances = InstanceData(bboxes=torch.cat([xy, xy + wh], 1),
                                       labels=torch.randint(0, 80, (num_boxes,), generator=gen))
    return dict(inputs=[image], data_samples=[sample])


def detector_steps(args) -> dict[str, dict[str, Callable[[], None]]]:
    """``{mode: {'ours'|'mmdet': step}}``: a train iteration (forward, loss, backward, AdamW step) or an
    inference (``test_step``) of the two detector configs, holding the same weights."""
    torch.manual_seed(0)  # neck and head: the same random initialisation in every worker process
    with tempfile.TemporaryDirectory() as tmpdir:
        arch = args.arch
        ours = build_detector(args.config)
        ref = build_detector(args.ref_config)
        # Same weights: backbones via the HF->official->mmdet path, neck and head copied (same classes).
        backbones = {b.name: b.model for b in build_backbones(arch, ['ours', 'mmdet'], tmpdir)}
        ours.backbone.load_state_dict(backbones['ours'].state_dict())
        ref.backbone.load_state_dict(backbones['mmdet'].state_dict())
        rest = {k: v for k, v in ours.state_dict().items() if not k.startswith('backbone.')}
        missing = ref.load_state_dict(rest, strict=False)
        if [k for k in missing.missing_keys if not k.startswith('backbone.')] or missing.unexpected_keys:
            raise BenchmarkError(f'neck/head of {args.config} and {args.ref_config} differ: {missing}')
    data = detector_batch(tuple(args.shape))
    models = {'ours': ours.to(args.device), 'mmdet': ref.to(args.device)}
    optims = {n: torch.optim.AdamW(m.parameters(), lr=1e-4, weight_decay=1e-4) for n, m in models.items()}

    def train_step(name):
        model, optim = models[name], optims[name]

        def step():
            model.train()
            batch = model.data_preprocessor(copy.deepcopy(data), True)
            with autocast(args.device, args.dtype):
                losses = model(**batch, mode='loss')
            loss, _ = model.parse_losses(losses)
            loss.backward()
            optim.step()
            optim.zero_grad(set_to_none=True)
        return step

    def infer_step(name):
        model = models[name]

        def step():
            model.eval()
            with torch.inference_mode(), autocast(args.device, args.dtype):
                model.test_step(copy.deepcopy(data))
        return step

    return {mode: {name: make(name) for name in models}
            for mode, make in (('infer', infer_step), ('train', train_step)) if mode in args.mode}



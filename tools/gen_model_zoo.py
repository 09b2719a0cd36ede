"""Write docs/model_zoo.md: one row per leaf config in configs/, measured, not typed by hand.

    python tools/gen_model_zoo.py                      # every config (slow: ~40 FLOP traces)
    python tools/gen_model_zoo.py --configs configs/retinanet_pvt_v2_b0_fpn.py --out /tmp/zoo.md

For each config: backbone, detector, schedule (read from the config), parameters and FLOPs
(``tools/get_flops.py``'s ``build_model`` and ``count_flops``, attention matmuls included), the
paper's COCO AP / ADE20K mIoU (the number in the config's header comment, where the configs keep
it) with its source table, and the ImageNet checkpoint its backbone starts from.

FLOPs are counted at the papers' input sizes: 800x1280 (H x W) for detection, 512x512 for
segmentation. Results are cached in ``work_dirs/model_zoo_cache.json`` under a hash of the merged
model config, the shape and tools/get_flops.py, so a re-run re-traces only the models that changed.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os.path as osp
import re
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pvt_det.cli import ToolError, cli_main  # noqa: E402

DET_SHAPE = (800, 1280)
SEG_SHAPE = (512, 512)
DEPTH_SHAPE = (480, 640)  # NYU Depth V2's whole test image
COMMAND = 'python tools/gen_model_zoo.py'

# Where each paper number comes from. The values were checked against the official repository's
# result tables (whai362/PVT detection/README.md); the table numbers of the papers are as cited.
V1 = 'PVT v1 paper (Wang et al., ICCV 2021, arXiv:2102.12122)'
V2 = 'PVT v2 paper (Wang et al., CVMJ 2022, arXiv:2106.13797)'
SOURCES = {
    ('pvt', 'RetinaNet'): 'v1 Tab. 3',
    ('pvt', 'MaskRCNN'): 'v1 Tab. 4',
    ('resnet', 'RetinaNet'): 'v1 Tab. 3',
    ('resnet', 'MaskRCNN'): 'v1 Tab. 4',
    ('pvt_v2', 'RetinaNet'): 'v2 Tab. 3',
    ('pvt_v2', 'MaskRCNN'): 'v2 Tab. 3',
    ('pvt_v2', 'MaskRCNN', '3x'): 'official README',
    ('pvt', 'DETR'): 'v1 (DETR)',
    ('pvt', 'EncoderDecoder'): 'v1 Tab. 5',
    ('resnet', 'EncoderDecoder'): 'v1 Tab. 5',
    ('pvt_v2', 'EncoderDecoder'): 'v2 (ADE20K table)',
}
DETECTORS = {'RetinaNet': 'RetinaNet', 'MaskRCNN': 'Mask R-CNN', 'EncoderDecoder': 'Semantic FPN',
             'ATSS': 'ATSS', 'GFL': 'GFL', 'CascadeRCNN': 'Cascade Mask R-CNN',
             'SparseRCNN': 'Sparse R-CNN', 'DETR': 'DETR', 'DeformableDETR': 'Deformable DETR',
             'Mask2Former': 'Mask2Former', 'DepthEstimator': 'GLPN'}
# Depth configs quote d1 and RMSE, the two figures the depth table shows.
DEPTH_PAPER_RE = re.compile(r'\bd1 (\d\.\d+).*?RMSE (\d\.\d+)', re.DOTALL)
PAPER_RE = re.compile(r'^#.*(?:AP|mIoU|PQ)[^:\n]*:\s*(\d+\.\d+)(?:\s*/\s*(\d+\.\d+))?', re.MULTILINE)
# Header wording that overrides the (family, detector) source: results the official repository
# publishes outside the papers, configs it has without a result, and mmdet's ResNet-50 figure
# shown beside a PVT config that has none.
SOURCE_MARKERS = (('Official repository', 'official README'),
                  ('mmseg SegFormer zoo', 'mmseg SegFormer zoo'),
                  ('publishes no result', 'official: not published'),
                  ("mmdet's ResNet-50", 'mmdet R50, not PVT'),
                  ("mmdet's Swin", 'mmdet Swin, not PVT'),
                  ('Global-Local Path Networks', 'GLPN paper'))


def leaf_configs(config_dir: Path = REPO / 'configs') -> list[Path]:
    """The model configs: configs/*.py (not _base_/ parts, not the examples/ of user datasets)."""
    return sorted(config_dir.glob('*.py'))


def describe(path: Path) -> dict[str, Any]:
    """Everything but the measured numbers, read from the config (no model is built)."""
    from mmengine.config import Config
    cfg = Config.fromfile(str(path))
    model = cfg.model
    backbone = model.backbone
    kind = backbone.type
    family = {'PVT': 'pvt', 'PVTv2': 'pvt_v2', 'CvT': 'cvt'}.get(kind, 'resnet')
    if family == 'resnet':
        name = f'ResNet-{backbone.depth}' + (' (V1c)' if kind == 'ResNetV1c' else '')
    elif family == 'cvt':
        name = f'CvT-{backbone.arch.upper()}'
    else:
        arch = backbone.get('arch', 'small' if family == 'pvt' else 'b2')
        name = (f'PVT-{arch.capitalize()}' if family == 'pvt' else
                'MiT-' + arch[len('mit_'):].upper() if arch.startswith('mit_') else
                'PVTv2-' + arch.upper().replace('_LI', '-Li'))
    if model.type == 'EncoderDecoder':
        schedule = f'{cfg.train_cfg.max_iters // 1000}k it'
        shape = SEG_SHAPE
    elif model.type == 'DepthEstimator':
        schedule = f'{cfg.train_cfg.max_iters // 1000}k it'
        shape = DEPTH_SHAPE
    elif model.type == 'Mask2Former':  # iteration-based, large-scale jitter crops (docs/panoptic.md)
        crop = next(t['crop_size'][0] for t in cfg.train_dataloader.dataset.pipeline if t['type'] == 'RandomCrop')
        schedule = f'{cfg.train_cfg.max_iters // 1000}k it, LSJ {crop}'
        shape = DET_SHAPE
    else:
        epochs = cfg.train_cfg.max_epochs
        pipeline = json.dumps(cfg.train_dataloader.dataset.pipeline)
        augment = (', MS crop' if 'RandomCrop' in pipeline else
                   ', MS' if 'RandomChoice' in pipeline else '')
        length = f'{epochs // 12}x ({epochs} ep' if epochs % 12 == 0 else f'({epochs} ep'
        scales = [t.get('scale') for t in cfg.train_dataloader.dataset.pipeline
                  if t.get('type') == 'Resize']
        if scales and tuple(scales[0]) != (1333, 800):  # trained (and tested) at another size
            augment += f', {scales[0][0]}x{scales[0][1]}'
        schedule = f'{length}{augment})'
        shape = DET_SHAPE
    text = path.read_text()
    header = text.split('_base_', 1)[0]
    paper = DEPTH_PAPER_RE.search(header) if model.type == 'DepthEstimator' else PAPER_RE.search(text)
    marked = [source for marker, source in SOURCE_MARKERS if marker in header]
    if paper is None:
        paper_value, source = '—', marked[0] if marked else 'no paper result'
    else:
        paper_value = ' / '.join(v for v in paper.groups() if v)
        key = (family, model.type, '3x') if '3x' in schedule else (family, model.type)
        source = marked[0] if marked else SOURCES.get(key, SOURCES.get((family, model.type), '?'))
    init = backbone.get('init_cfg') or {}
    checkpoint = init.get('checkpoint', '') if isinstance(init, dict) else ''
    if 'huggingface.co/' in checkpoint:  # .../microsoft/cvt-13/resolve/main/pytorch_model.bin
        checkpoint = 'HF ' + '/'.join(checkpoint.split('huggingface.co/')[1].split('/')[:2])
    elif checkpoint.startswith(('http://', 'https://')):
        checkpoint = checkpoint.rsplit('/', 1)[-1]
    detector = ('SegFormer' if model.get('decode_head', {}).get('type') == 'SegformerHead' else
                DETECTORS.get(model.type, model.type))
    if model.type == 'Mask2Former':
        detector += ' (panoptic)' if model.test_cfg.get('panoptic_on') else ' (instance)'
    return dict(config=path.name, backbone=name, detector=detector,
                schedule=schedule, shape=list(shape), paper=paper_value, source=source,
                checkpoint=checkpoint or '—',
                task='seg' if model.type == 'EncoderDecoder' else
                'panoptic' if model.type == 'Mask2Former' else
                'depth' if model.type == 'DepthEstimator' else 'det')


def measure(path: Path, shape: tuple[int, int]) -> dict[str, float]:
    """Parameters (M) and FLOPs (G multiply-adds) of the whole model on one image of ``shape``."""
    import torch
    from pvt_det.benchmark.flops import build_model, count_flops  # what tools/get_flops.py counts with
    torch.manual_seed(0)  # Mask R-CNN's RoI-head FLOPs depend on how many proposals survive NMS
    start = time.time()
    model, _ = build_model(str(path), shape, backbone_only=False)
    if type(getattr(model, 'model', None)).__name__ == 'SparseRCNN':
        # Its tensor-mode forward runs the box stages through their training path, which reads
        # each sample's ground truth: none here (the Hungarian assigner matches nothing). Its own
        # initialisation, as the runner's, keeps the refined boxes non-degenerate for RoIAlign.
        from mmengine.structures import InstanceData
        model.model.init_weights()
        for sample in model.samples:
            sample.gt_instances = InstanceData(bboxes=torch.zeros(0, 4),
                                               labels=torch.zeros(0, dtype=torch.long))
    flops, params = count_flops(model, (3, *shape))
    return dict(params_m=params / 1e6, gflops=flops / 1e9, seconds=round(time.time() - start, 1))


def cache_key(path: Path, shape: list[int], get_flops_source: str) -> str:
    """Changes with what the numbers depend on: the merged model config, shape, get_flops.py."""
    from mmengine.config import Config
    model = Config.fromfile(str(path)).model.to_dict()
    digest = hashlib.sha1()
    model_text = json.dumps(model, sort_keys=True, default=str)
    for text in (model_text, json.dumps(shape), get_flops_source):
        digest.update(text.encode())
    return digest.hexdigest()


INTRO = """\
# Model zoo

<!-- GENERATED by `{command}` from configs/ and tools/get_flops.py; do not edit by hand. -->

Generated by `{command}`: one row per config in `configs/` (the user-config examples in
`configs/examples/` are left out). **Params** and **FLOPs** are measured on the built model
(backbone, neck and heads) with the functions of `tools/get_flops.py`: one multiply-add counts as
one FLOP and the attention matmuls are included, as in the PVT papers. Detection FLOPs are at
**800×1280** (H×W, the PVT papers' 1280×800 input), segmentation FLOPs at **512×512**. Mask
R-CNN FLOPs include the RoI heads run on the RPN proposals of a random image (seeded; at most
1000), so they depend on the proposal count; Cascade Mask R-CNN's include the box and mask heads
of all three stages on every proposal, as mmdet's tensor-mode forward runs them (inference runs
the mask head on the final detections only), hence their size. Sparse R-CNN, DETR and Deformable
DETR count their fixed 300 / 100 / 300 proposals or queries.

**Paper** is the COCO val2017 box AP (box / mask AP for Mask R-CNN and Cascade Mask R-CNN) or
the ADE20K val mIoU (single scale) that the paper, or the official repository (**source**),
reports for this backbone and recipe with ImageNet-1K pretraining;
nothing here was trained on COCO or ADE20K (they cannot be downloaded on the machine that built
this toolkit). **Checkpoint** is the ImageNet file the backbone initialises from (`init_cfg`):
`pvt_*.pth` are the official releases `https://github.com/whai362/PVT/releases/download/v2/<name>`;
offline, see [get_started.md](get_started.md#pretrained-weights-offline).
"""
SEG_INTRO = """\
The segmentation recipe, the parameter counts against the papers' and the ADE20K layout are in
[segmentation.md](segmentation.md); SegFormer (`segformer_*`: mmseg's configs, and mmseg's mIoU) in
[segformer.md](segformer.md).
"""
PANOPTIC_INTRO = """\
The recipe, what follows the backbone and how to read PQ / SQ / RQ are in [panoptic.md](panoptic.md).
FLOPs at 800×1280 as for detection: the backbone, the pixel decoder and the 100 queries' decoder
(the deformable attention's bilinear sampling, `grid_sample`, is not counted).
"""
DEPTH_INTRO = """\
GLPN's decoder on MiT or PVT v2 encoders, trained with mmseg's `DepthEstimator` and SiLog loss; the recipe,
the metrics and how to read them are in [depth.md](depth.md). FLOPs at 480×640, NYU's whole test image.
"""
SOURCES_TEXT = """\
## Sources

- **v1 Tab. 3 / 4 / 5**: {v1}: Table 3 (RetinaNet 1x), Table 4
  (Mask R-CNN 1x), Table 5 (Semantic FPN on ADE20K); their ResNet-50 rows for the ResNet twins.
- **v2 Tab. 3**: {v2}: Table 3 (RetinaNet and Mask R-CNN 1x).
  **v2 (ADE20K table)**: its Semantic FPN table.
- **official README**: results published in the official repository (whai362/PVT,
  `detection/README.md`) rather than in the papers: the 3x multi-scale Mask R-CNN of
  PVTv2-B0/B2, the 3x multi-scale crop Cascade Mask R-CNN, ATSS, GFL and Sparse R-CNN of
  PVTv2-B2/B2-Li (the detectors the PVT v2 paper compares with Swin-T) and RetinaNet PVT-Small at
  640 px. **official: not published**: the official repository has the config (Mask R-CNN
  PVTv2-B2-Li 3x) but no result for it.
- **v1 (DETR)**: the PVT v1 paper's DETR comparison (50 epochs, PVT-Small's last stage).
- **mmseg SegFormer zoo**: mmseg's published single-scale mIoU of the same SegFormer config
  (`configs/segformer/metafile.yaml` of mmseg 1.2; Cityscapes rows are Cityscapes val, sliding window).
- **mmdet R50, not PVT**: Deformable DETR on PVTv2-B2 has no published result; the figure is
  mmdet's ResNet-50 model of the same recipe (`deformable_detr/metafile.yml`), for scale only.
- **GLPN paper**: Kim et al., "Global-Local Path Networks for Monocular Depth Estimation with Vertical
  CutDepth" (arXiv:2201.07436), NYU Depth V2 test set with the Eigen crop: d1 and RMSE (m) of GLPN (MiT-b4).
  Quoted as the paper reports them; no copy of its table could be consulted on the machine that built this
  toolkit. The PVTv2 GLPN configs have no published result.
- **mmdet Swin, not PVT**: Mask2Former on PVT v2 has no published result; the figure is mmdet's Swin
  model of the same recipe (`mask2former/metafile.yml`: Swin-T beside B2, Swin-B 384 beside B5), for
  scale only.

The official 3x configs named `*_fp16` (Cascade Mask R-CNN, ATSS, GFL; also RetinaNet PVT-Large
1x) trained with apex mixed precision. mmdet 3.x switches that on per run rather than in the
config: `python tools/train.py CONFIG --amp` (mmengine's AmpOptimWrapper, float16 on CUDA).

How far each number was checked: every PVT and PVTv2 RetinaNet and Mask R-CNN number above equals
the result tables of the official repository (whai362/PVT `detection/README.md`); of the other
detectors' numbers (as issue 14 quotes that README), RetinaNet PVT-Small 640 (38.7) was checked
against it, the others were not checked here; RetinaNet-R50 36.3 is quoted in
the PVT v1 abstract; the ResNet-50 Mask R-CNN number (38.0 / 34.4) and the table numbers
themselves are cited from the papers without a second source. The ADE20K numbers are those of
[segmentation.md](segmentation.md), which gives their sources. The CvT paper has no COCO or
ADE20K result: the CvT-13 configs use the PVT-Small recipe and have no paper number.
"""


def table(rows: list[dict[str, Any]], metric: str) -> list[str]:
    out = [f'| config | backbone | detector | schedule | params (M) | FLOPs (G) | paper {metric} '
           '| source | checkpoint |',
           '| --- | --- | --- | --- | ---: | ---: | ---: | --- | --- |']
    for r in rows:
        out.append(f'| [{r["config"]}](../configs/{r["config"]}) | {r["backbone"]} | '
                   f'{r["detector"]} | {r["schedule"]} | {r["params_m"]:.2f} | {r["gflops"]:.1f} | '
                   f'{r["paper"]} | {r["source"]} | `{r["checkpoint"]}` |')
    return out


def render(rows: list[dict[str, Any]], command: str) -> str:
    det = [r for r in rows if r['task'] == 'det']
    seg = [r for r in rows if r['task'] == 'seg']
    panoptic = [r for r in rows if r['task'] == 'panoptic']
    depth = [r for r in rows if r['task'] == 'depth']
    lines = [INTRO.format(command=command)]
    if det:
        lines += ['## Detection (COCO)', ''] + table(det, 'AP') + ['']
    if seg:
        lines += ['## Semantic segmentation (ADE20K; SegFormer also Cityscapes)', '', SEG_INTRO] + \
            table(seg, 'mIoU') + ['']
    if panoptic:
        lines += ['## Panoptic and instance segmentation (COCO, Mask2Former)', '', PANOPTIC_INTRO] + \
            table(panoptic, 'PQ / AP') + ['']
    if depth:
        lines += ['## Monocular depth (NYU Depth V2, GLPN)', '', DEPTH_INTRO] + table(depth, 'd1 / RMSE') + ['']
    lines.append(SOURCES_TEXT.format(v1=V1, v2=V2))
    return '\n'.join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--configs', nargs='+', help='configs to include (default: configs/*.py)')
    parser.add_argument('--out', default=str(REPO / 'docs' / 'model_zoo.md'), help='output file')
    parser.add_argument('--cache', default=str(REPO / 'work_dirs' / 'model_zoo_cache.json'),
                        help='per-config results, reused while the model config is unchanged')
    parser.add_argument('--no-cache', action='store_true', help='measure every config again')
    return parser.parse_args(argv)


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    paths = [Path(p).resolve() for p in args.configs] if args.configs else leaf_configs()
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ToolError(f'config not found: {", ".join(missing)}')
    get_flops_source = (REPO / 'pvt_det' / 'benchmark' / 'flops.py').read_text()
    cache_path = Path(args.cache)
    cache = {} if args.no_cache or not cache_path.is_file() else json.loads(cache_path.read_text())
    rows = []
    for path in paths:
        row = describe(path)
        key = cache_key(path, row['shape'], get_flops_source)
        if cache.get(row['config'], {}).get('key') != key:
            cache[row['config']] = dict(key=key, **measure(path, tuple(row['shape'])))
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            cache_path.write_text(json.dumps(cache, indent=1))
        row.update({k: v for k, v in cache[row['config']].items() if k != 'key'})
        print(f'{row["config"]}: {row["params_m"]:.2f} M params, {row["gflops"]:.1f} GFLOPs at '
              f'{row["shape"][0]}x{row["shape"][1]} ({row["seconds"]} s)', flush=True)
        rows.append(row)
    command = COMMAND if not args.configs else f'{COMMAND} --configs ...'
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(rows, command))
    print(f'wrote {osp.relpath(out)} ({len(rows)} configs)')
    return 0


if __name__ == '__main__':
    sys.exit(main())

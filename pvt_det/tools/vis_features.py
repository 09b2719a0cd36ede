"""What a backbone sees: one PNG with the image, every stage's feature map, and the spatial-reduction attention
of query points in every stage (docs/look_inside.md).

    python tools/vis_features.py IMAGE --arch pvt_v2_b2 [--checkpoint CLS.pth] --out OUT.png
    python tools/vis_features.py IMAGE --config configs/retinanet_pvt_v2_b0_fpn.py --checkpoint DET.pth \\
        --points 120,80 300,200 --out OUT.png

``--arch`` builds a classifier's backbone by name (random weights, or a classification ``--checkpoint``),
ImageNet mean/std; ``--config`` builds a detector's/segmentor's backbone and loads a whole-model checkpoint
strictly, with the config's own mean/std and test resize. The attention comes from the model's own modules,
computed for the query points only (their ``attention_weights``), so the fast SDPA path is unchanged.
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys

from pvt_det.cli import ToolError, cli_main


def parse_point(text: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(','))
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not a point: use X,Y in image pixels, e.g. 120,80')
    return x, y


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('image', help='an image file (any format OpenCV reads)')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--arch', help='a classifier backbone by name, e.g. pvt_small, pvt_v2_b2, pvt_v2_b2_li, cvt_13')
    source.add_argument('--config', help='a detector/segmentor config; its backbone is pictured')
    parser.add_argument('--checkpoint', help='--arch: a classification checkpoint; --config: the model checkpoint')
    parser.add_argument('--points', type=parse_point, nargs='+', metavar='X,Y',
                        help='query pixels in image coordinates (default: the centre and halfway to the top-left)')
    parser.add_argument('--out', required=True, help='the PNG to write')
    parser.add_argument('--features', choices=('pca', 'mean'), default='pca',
                        help='stage maps as the first 3 principal components in RGB (default) or the channel mean')
    parser.add_argument('--block', type=int, default=-1, help='block of each stage whose attention is drawn')
    parser.add_argument('--tile', type=int, default=256, help='longer side of each panel, pixels')
    parser.add_argument('--max-side', type=int, default=512,
                        help='--arch: rescale the image so that its longer side is this (the network input)')
    return parser.parse_args(argv)


def visualize(args: argparse.Namespace):
    """Build the backbone and input named by ``args`` and draw the figure (returned, and written to ``--out``)."""
    import mmcv
    import torch

    from pvt_det.visualization.inputs import build_config_backbone, classifier_input
    from pvt_det.visualization.layout import draw_backbone_figure, write_figure
    if not osp.isfile(args.image):
        raise ToolError(f'image not found: {args.image}')
    image = mmcv.imread(args.image, channel_order='rgb')
    if image is None:
        raise ToolError(f'cannot read {args.image} as an image')
    if args.arch:
        from pvt_det.models import build_classifier
        from pvt_det.models.classifiers import classifier_names
        if args.arch not in classifier_names():
            raise ToolError(f'unknown --arch {args.arch!r}; choose one of {", ".join(classifier_names())}')
        if args.checkpoint:
            from pvt_det.config.preflight import check_checkpoint
            check_checkpoint(args.checkpoint)
        torch.manual_seed(0)  # random weights: the same picture every run
        backbone = build_classifier(args.arch, checkpoint=args.checkpoint).backbone.eval()
        preprocessing = classifier_input(args.max_side)
    else:
        torch.manual_seed(0)
        backbone, preprocessing = build_config_backbone(args.config, args.checkpoint)
    inputs = preprocessing.tensor(image)
    side = getattr(backbone, 'min_input_size', 1)
    if min(inputs.shape[-2:]) < side:
        raise ToolError(f'the network input {inputs.shape[-1]}x{inputs.shape[-2]} is smaller than the {side} '
                        'pixels this backbone needs; use a larger image or --max-side')
    try:
        figure = draw_backbone_figure(backbone, inputs, image, args.points, tile=args.tile, features=args.features,
                                      block=args.block)
    except (ValueError, IndexError) as e:
        raise ToolError(str(e)) from e
    try:
        write_figure(figure, args.out)
    except OSError as e:
        raise ToolError(f'{e}: check that the folder of --out exists and is writable') from e
    return figure


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    figure = visualize(args)
    layout = figure.layout
    print(f'wrote {args.out}: {layout.rows} rows (stage maps, then one per query) x {layout.cols} columns '
          f'(image, then one per stage), {layout.size_hw[1]}x{layout.size_hw[0]} pixels')
    return 0


if __name__ == '__main__':
    sys.exit(main())

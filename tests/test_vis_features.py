"""tools/vis_features.py: the drawn attention is the model's own softmax(q k^T * scale), and the PNG has the
layout it claims (maps where maps are drawn, the query marked where it is)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pvt_det.benchmark.peers import perturb_
from pvt_det.models.backbones import PVT, PVTv2
from pvt_det.models.backbones.cvt import CvT, ConvAttention
from pvt_det.models.layers import SpatialReductionAttention
from pvt_det.tools import vis_features
from pvt_det.visualization.features import stage_maps
from pvt_det.visualization.layout import MARK_COLOR, Layout, draw_backbone_figure, write_figure

TINY = dict(embed_dims=[8, 16, 24, 32], num_heads=[1, 2, 3, 4], depths=[1, 1, 1, 1], mlp_ratios=[2, 2, 2, 2],
            sr_ratios=[4, 2, 2, 1])
TINY_BACKBONES = {
    'v1': lambda: PVT(arch=TINY, pretrain_img_size=64),
    'v2': lambda: PVTv2(arch=TINY),
    'v2-li': lambda: PVTv2(arch=dict(TINY, linear=True)),
    'cvt': lambda: CvT(arch=dict(embed_dims=[8, 16, 24], num_heads=[1, 2, 3], depths=[1, 1, 1])),
}


def direct_attention(module, x: torch.Tensor, token_grid: tuple[int, int], queries: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T * scale) of the query tokens, written out from the module's parameters: ``(heads, Q, keys)``."""
    batch, _, dim = x.shape
    heads = module.num_heads
    if isinstance(module, SpatialReductionAttention):
        q = F.linear(x[:, queries], module.q.weight, module.q.bias)
        keys = x
        if module.sr is not None:
            grid = x.transpose(1, 2).reshape(batch, dim, *token_grid)
            if module.linear:
                grid = F.adaptive_avg_pool2d(grid, 7)
            grid = F.conv2d(grid, module.sr.weight, module.sr.bias, stride=module.sr.stride)
            keys = F.layer_norm(grid.flatten(2).transpose(1, 2), (dim,), module.norm.weight, module.norm.bias,
                                module.norm.eps)
            if module.linear:
                keys = F.gelu(keys)
        k = F.linear(keys, module.kv.weight[:dim], module.kv.bias[:dim])
        scale = (dim // heads) ** -0.5
    else:
        cls_count = int(module.with_cls_token)
        spatial = x[:, cls_count:].transpose(1, 2).reshape(batch, dim, *token_grid)

        def conv_bn(projection):
            conv, bn = projection.conv, projection.bn
            out = F.conv2d(spatial, conv.weight, None, conv.stride, conv.padding, groups=dim)
            out = F.batch_norm(out, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
            return torch.cat([x[:, :cls_count], out.flatten(2).transpose(1, 2)], 1)

        q = F.linear(conv_bn(module.conv_proj_q), module.proj_q.weight, module.proj_q.bias)[:, queries + cls_count]
        k = F.linear(conv_bn(module.conv_proj_k), module.proj_k.weight, module.proj_k.bias)
        scale = dim ** -0.5
    q = q.reshape(batch, len(queries), heads, -1)
    k = k.reshape(batch, k.shape[1], heads, -1)
    return torch.einsum('bqhd,bkhd->bhqk', q, k).mul(scale).softmax(-1)[0]


def capture_attention_inputs(backbone) -> tuple[list, list]:
    """Our own hooks (not the probe's) on the last block's attention of every stage."""
    seen, handles = [], []
    for stage in backbone.stages:
        handles.append(stage.blocks[-1].attn.register_forward_hook(lambda m, args, out: seen.append(args)))
    return seen, handles


@pytest.mark.parametrize('family', list(TINY_BACKBONES))
def test_drawn_attention_is_the_modules_softmax(family):
    torch.manual_seed(0)
    backbone = perturb_(TINY_BACKBONES[family]()).eval()
    for module in backbone.modules():  # sharper attention than the init's, so a wrong key shows
        if isinstance(module, (SpatialReductionAttention, ConvAttention)):
            (module.q if isinstance(module, SpatialReductionAttention) else module.proj_q).weight.data.mul_(4)
    image = np.random.default_rng(0).integers(0, 255, (48, 80, 3), dtype=np.uint8)
    x = torch.randn(1, 3, 48, 80)
    points = [(5.0, 7.0), (70.0, 40.0), (40.0, 24.0)]
    with torch.no_grad():  # the probe leaves the forward as it is
        plain = list(backbone.__class__.forward(backbone, x)) if len(backbone.out_indices) == backbone.num_stages \
            else None
    seen, handles = capture_attention_inputs(backbone)
    figure = draw_backbone_figure(backbone, x, image, points, tile=80)
    for handle in handles:
        handle.remove()
    maps = stage_maps(backbone, x)
    if plain is not None:
        assert all(torch.equal(a[0], b) for a, b in zip(plain, maps))
    assert len(figure.attention) == len(backbone.stages)
    for stage, args in zip(figure.attention, seen):
        module = stage.module
        x_in, token_grid = (args[0], args[1]) if isinstance(module, ConvAttention) else (args[0], tuple(args[1:]))
        rows, cols = token_grid
        queries = torch.tensor([int(py * rows / 48) * cols + int(px * cols / 80) for px, py in points])
        expected = direct_attention(module, x_in, token_grid, queries)
        torch.testing.assert_close(stage.weights, expected, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(stage.weights.sum(-1), torch.ones(module.num_heads, len(points)))
        assert stage.weights.max() > 1.2 / stage.weights.shape[-1]  # not uniform: a wrong key would show
        # What is drawn: each key's head-averaged weight spread evenly over the tokens it summarises.
        drawn = stage.on_tokens()
        torch.testing.assert_close(drawn.sum((1, 2)), stage.spatial().sum((1, 2)))
        if isinstance(module, SpatialReductionAttention) and module.sr is not None and not module.linear:
            r = module.sr_ratio
            torch.testing.assert_close(drawn[:, :stage.key_grid[0] * r:r, :stage.key_grid[1] * r:r],
                                       stage.spatial() / r ** 2)
    if family == 'cvt':  # the last stage's cls token takes part of the weight, the rest is drawn
        last = figure.attention[-1]
        assert last.extra_keys == 1 and (last.spatial().sum((1, 2)) < 1).all()


def gray_image(height: int, width: int) -> np.ndarray:
    """Gray levels only (a gradient and two squares): jet's red and blue stay tellable over it."""
    ramp = np.linspace(60, 190, width, dtype=np.float32)[None, :].repeat(height, 0)
    ramp[8:24, 8:24] = 230
    ramp[height - 20:height - 6, width - 30:width - 12] = 30
    return np.repeat(ramp[..., None], 3, 2).astype(np.uint8)


def check_png_layout(out, figure, image: np.ndarray, stages: int) -> None:
    """The PNG at ``out`` has the tiles the figure's layout says, each showing what it should."""
    canvas = cv2.imread(str(out))[..., ::-1]
    layout = Layout(rows=3, cols=1 + stages, tile_hw=(96, 128))
    assert figure.layout == layout and canvas.shape[:2] == layout.size_hw
    base = cv2.resize(image, (128, 96), interpolation=cv2.INTER_AREA).astype(int)
    assert figure.tile_points == [(20, 80), (100, 24)]
    for row in range(layout.rows):
        for col in range(layout.cols):
            top, left, bottom, right = layout.box(row, col)
            tile = canvas[top:bottom, left:right].astype(int)
            assert (canvas[top - 14:top - 2, left:right] < 100).any()  # a header line of text
            if col == 0:
                continue
            assert np.abs(tile - base).mean() > 10, (row, col)  # a map is drawn over the image
            if row == 0:
                continue
            x, y = figure.tile_points[row - 1]
            assert tuple(tile[y, x]) == MARK_COLOR  # the query is marked where it is
            heat = figure.attention[col - 1].on_tokens()[row - 1]
            rows, cols = heat.shape
            for flat, hot in ((int(heat.argmax()), True), (int(heat.argmin()), False)):
                ty, tx = int((flat // cols + 0.5) * 96 / rows), int((flat % cols + 0.5) * 128 / cols)
                if abs(tx - x) + abs(ty - y) < 10:
                    continue  # under the mark
                red, _, blue = tile[ty, tx]
                assert (red > blue) if hot else (blue > red), (row, col, hot)  # jet: red at the max


@pytest.mark.parametrize('family', list(TINY_BACKBONES))
def test_png_layout_for_every_family(family, tmp_path):
    torch.manual_seed(0)
    backbone = perturb_(TINY_BACKBONES[family]()).eval()
    image = gray_image(48, 64)
    figure = draw_backbone_figure(backbone, torch.randn(1, 3, 48, 64), image, [(10, 40), (50, 12)], tile=128)
    write_figure(figure, str(tmp_path / 'out.png'))
    check_png_layout(tmp_path / 'out.png', figure, image, len(backbone.stages))


def test_vis_features_cli_writes_the_png(tmp_path, capsys):
    path = tmp_path / 'image.png'
    image = gray_image(48, 64)
    cv2.imwrite(str(path), image)
    out = tmp_path / 'out.png'
    argv = [str(path), '--arch', 'pvt_v2_b0', '--points', '10,40', '50,12', '--tile', '128', '--max-side', '64',
            '--out', str(out)]
    figure = vis_features.visualize(vis_features.parse_args(argv))
    check_png_layout(out, figure, image, 4)
    assert vis_features.main(argv) == 0
    assert 'wrote' in capsys.readouterr().out
    assert np.array_equal(cv2.imread(str(out))[..., ::-1], figure.canvas)  # random weights, seeded: the same


def test_vis_features_cli_errors_in_one_line(tmp_path, capsys):
    path = tmp_path / 'image.png'
    cv2.imwrite(str(path), gray_image(48, 64))
    assert vis_features.main([str(path), '--arch', 'pvt_huge', '--out', str(tmp_path / 'o.png')]) == 1
    assert "unknown --arch 'pvt_huge'" in capsys.readouterr().err
    assert vis_features.main([str(path), '--arch', 'pvt_v2_b0', '--points', '500,5', '--max-side', '64',
                              '--out', str(tmp_path / 'o.png')]) == 1
    assert 'query point 500,5 lies outside the 64x48 image' in capsys.readouterr().err
    assert not (tmp_path / 'o.png').exists()

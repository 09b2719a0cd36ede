"""The one-PNG picture of a backbone: a grid of tiles, each the image with something drawn over it.

Column 0 holds the image, then one column per stage. Row 0: the stage maps (PCA to RGB or channel mean).
Row ``1 + j``: the attention of query ``j`` in every stage (head-averaged, the query marked). Every tile has
a header line of text above it; :class:`Layout` says where each tile lies, so what is drawn can be checked.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .attention import AttentionProbe, StageAttention, query_tokens, stage_attention_modules
from .features import channel_mean, pca_rgb, stage_maps

HEADER = 16  # pixels of text above each tile
GAP = 4  # pixels between tiles
MARK_COLOR = (255, 0, 255)  # magenta: not in the jet colour map, so a mark stays findable
BACKGROUND = 255
FEATURE_MODES = ('pca', 'mean')


@dataclass(frozen=True)
class Layout:
    rows: int
    cols: int
    tile_hw: tuple[int, int]

    @property
    def size_hw(self) -> tuple[int, int]:
        height, width = self.tile_hw
        return (self.rows * (HEADER + height) + (self.rows + 1) * GAP, self.cols * width + (self.cols + 1) * GAP)

    def box(self, row: int, col: int) -> tuple[int, int, int, int]:
        """``(top, left, bottom, right)`` of tile ``(row, col)``'s image area (its header is above it)."""
        height, width = self.tile_hw
        top = GAP + row * (HEADER + height + GAP) + HEADER
        left = GAP + col * (width + GAP)
        return top, left, top + height, left + width


@dataclass
class BackboneFigure:
    canvas: np.ndarray  # RGB uint8
    layout: Layout
    attention: list[StageAttention]  # per stage, for the queries in order
    points: list[tuple[float, float]]  # query points, image pixels
    tile_points: list[tuple[int, int]]  # the same in tile pixels


def default_points(image_hw: tuple[int, int]) -> list[tuple[float, float]]:
    """The image centre and a point halfway to the top-left corner."""
    height, width = image_hw
    return [(width / 2, height / 2), (width / 4, height / 4)]


def mark(tile: np.ndarray, point: tuple[int, int], label: str | None = None) -> None:
    cv2.drawMarker(tile, point, MARK_COLOR, cv2.MARKER_CROSS, markerSize=11, thickness=2)
    if label:
        cv2.putText(tile, label, (point[0] + 6, point[1] - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, MARK_COLOR, 1,
                    cv2.LINE_AA)


def overlay_map(tile: np.ndarray, heat: torch.Tensor, mode: str = 'bilinear') -> np.ndarray:
    """``(1, h, w)`` map resized to the tile (``mode``) and drawn over it by mmengine's ``draw_featmap``."""
    from mmengine.visualization import Visualizer
    resized = F.interpolate(heat[None].float(), size=tile.shape[:2], mode=mode)[0]
    return Visualizer.draw_featmap(resized, overlaid_image=tile, channel_reduction='squeeze_mean', alpha=0.5)


def overlay_rgb(tile: np.ndarray, rgb: torch.Tensor, alpha: float = 0.6) -> np.ndarray:
    """``(3, h, w)`` colours in [0, 1] resized to the tile and blended over it."""
    resized = F.interpolate(rgb[None], size=tile.shape[:2], mode='bilinear', align_corners=False)[0]
    colours = (resized.clamp(0, 1).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    return cv2.addWeighted(tile, 1 - alpha, colours, alpha, 0)


def draw_backbone_figure(backbone: nn.Module, inputs: torch.Tensor, image: np.ndarray,
                         points: list[tuple[float, float]] | None = None, tile: int = 256,
                         features: str = 'pca', block: int = -1) -> BackboneFigure:
    """The picture of ``backbone`` on ``inputs`` (``(1, 3, H, W)``, preprocessed ``image``).

    Args:
        image: the RGB uint8 image ``inputs`` was made from (any size: ``inputs`` may be resized).
        points: query points (x, y) in ``image`` pixels; default :func:`default_points`.
        tile: the longer side of every tile, pixels.
        features: ``'pca'`` (first three principal components as RGB) or ``'mean'`` (channel mean, jet).
        block: which block of each stage to probe (default the last).
    """
    if features not in FEATURE_MODES:
        raise ValueError(f'features={features!r}: use one of {FEATURE_MODES}')
    image_hw = image.shape[:2]
    points = list(points) if points else default_points(image_hw)
    for x, y in points:
        if not (0 <= x < image_hw[1] and 0 <= y < image_hw[0]):
            raise ValueError(f'query point {x:g},{y:g} lies outside the {image_hw[1]}x{image_hw[0]} image')
    scale = tile / max(image_hw)
    tile_hw = (max(round(image_hw[0] * scale), 1), max(round(image_hw[1] * scale), 1))
    base = cv2.resize(image, tile_hw[::-1], interpolation=cv2.INTER_AREA)
    tile_points = [(min(int(x * scale), tile_hw[1] - 1), min(int(y * scale), tile_hw[0] - 1)) for x, y in points]

    modules = stage_attention_modules(backbone, block)
    probe = AttentionProbe(modules)
    maps = stage_maps(backbone, inputs, probe)
    input_hw = tuple(inputs.shape[-2:])
    # Query points in the network input's pixels (it may be a resized copy of the image).
    input_points = [(x * input_hw[1] / image_hw[1], y * input_hw[0] / image_hw[0]) for x, y in points]
    attention = []
    for index, feature_map in enumerate(maps):
        token_grid = tuple(feature_map.shape[-2:])
        attention.append(probe.attention(index, query_tokens(input_points, input_hw, token_grid)))

    layout = Layout(rows=1 + len(points), cols=1 + len(maps), tile_hw=tile_hw)
    canvas = np.full((*layout.size_hw, 3), BACKGROUND, dtype=np.uint8)

    def place(row: int, col: int, picture: np.ndarray, header: str) -> None:
        top, left, bottom, right = layout.box(row, col)
        canvas[top:bottom, left:right] = picture
        scale = 0.36  # shrunk until the header fits above its tile
        while scale > 0.2 and cv2.getTextSize(header, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] > right - left:
            scale -= 0.02
        cv2.putText(canvas, header, (left, top - 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)

    everything = base.copy()
    for j, point in enumerate(tile_points):
        mark(everything, point, str(j))
    place(0, 0, everything, f'input {input_hw[1]}x{input_hw[0]}; maps: {features}')
    stride = 1
    for index, (feature_map, stage) in enumerate(zip(maps, attention)):
        stride = round(input_hw[0] / feature_map.shape[-2]) if feature_map.shape[-2] else stride
        drawn = overlay_rgb(base, pca_rgb(feature_map)) if features == 'pca' else \
            overlay_map(base, channel_mean(feature_map))
        place(0, 1 + index, drawn, f'stage {index + 1}: 1/{stride}, {feature_map.shape[-1]}x{feature_map.shape[-2]}')
    for j, point in enumerate(tile_points):
        alone = base.copy()
        mark(alone, point, str(j))
        x, y = points[j]
        place(1 + j, 0, alone, f'query {j} at {x:.0f},{y:.0f}')
        for index, stage in enumerate(attention):
            heat = stage.on_tokens()[j]
            drawn = overlay_map(base, heat[None], mode='nearest')
            mark(drawn, point)
            cls = f', cls {stage.head_mean[j, :stage.extra_keys].sum():.2f}' if stage.extra_keys else ''
            # Colours span each panel's range; the header says how far its peak is above uniform (1.0x).
            peak = stage.head_mean[j].max() * stage.weights.shape[-1]
            place(1 + j, 1 + index, drawn, f'{stage.key_grid[1]}x{stage.key_grid[0]} keys, peak {peak:.1f}x{cls}')
    return BackboneFigure(canvas, layout, attention, points, tile_points)


def write_figure(figure: BackboneFigure, path: str) -> None:
    """The figure as a PNG at ``path`` (written to a temporary file, then renamed)."""
    from pvt_det.fileio import atomic_output
    with atomic_output(path) as tmp_path:
        if not cv2.imwrite(tmp_path, np.ascontiguousarray(figure.canvas[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
            raise OSError(f'could not write {path}')

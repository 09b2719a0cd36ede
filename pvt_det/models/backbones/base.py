"""What every pvt_det backbone shares: argument validation, strict pretrained loading, frozen stages,
``norm_eval`` and input checks. The families (pvt.py, cvt.py) only build their stages and forward."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from mmengine.model import BaseModule
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..checkpoint import CheckpointError, UnknownLayoutError, convert_backbone_keys, load_pretrained


class PyramidBackbone(BaseModule):
    """Base of the multi-scale backbones. Subclasses set the class attributes, call
    ``super().__init__`` (which parses and validates the arguments into ``self.arch_settings``,
    ``self.num_stages``, ``self.out_indices`` ...), build ``self.stages`` and ``self.min_input_size``,
    then call ``self._freeze_stages()``.
    """

    arch_zoo: dict[str, dict[str, Any]] = {}
    family = ''  # checkpoint-layout family, see pvt_det.models.checkpoint
    arch_keys: tuple[str, ...] = ()  # keys a custom arch dict must have
    optional_arch_keys: frozenset[str] = frozenset()
    stage_counts = range(1, 5)  # how many stages a custom arch dict may describe
    strides: tuple[int, ...] = ()  # each stage's patch-embedding stride (PVT 4, 2, 2, 2; CvT 4, 2, 2)
    min_input_size = 1
    stages: nn.ModuleList

    def __init__(self, arch: str | dict, in_channels: int, out_indices: Sequence[int] | int,
                 frozen_stages: int, norm_eval: bool, with_cp: bool,
                 init_cfg: dict | list | None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.arch_name, self.arch_settings = self._parse_arch(arch)
        self.num_stages = len(self.arch_settings['depths'])
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f'{type(self).__name__}: in_channels={in_channels!r} must be a positive '
                             f'int (3 for RGB images)')
        self.in_channels = in_channels
        self.out_indices = self._parse_out_indices(out_indices)
        if isinstance(frozen_stages, bool) or not isinstance(frozen_stages, int) or \
                not -1 <= frozen_stages < self.num_stages:
            raise ValueError(
                f'frozen_stages={frozen_stages!r} is out of range: use -1 (train everything) up to '
                f'{self.num_stages - 1} (freeze all {self.num_stages} stages)')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp

    @property
    def display_name(self) -> str:
        return f'{type(self).__name__}(arch={self.arch_name!r})'

    @property
    def out_channels(self) -> tuple[int, ...]:
        """Channels of each map ``forward`` returns, in ``out_indices`` order (a neck's ``in_channels``)."""
        dims = self.arch_settings['embed_dims']
        return tuple(int(dims[i]) for i in self.out_indices)

    @property
    def out_strides(self) -> tuple[int, ...]:
        """Stride (input pixels per map pixel) of each map ``forward`` returns, in ``out_indices`` order."""
        cumulative = [math.prod(self.strides[:i + 1]) for i in range(self.num_stages)]
        return tuple(cumulative[i] for i in self.out_indices)

    # ----------------------------------------------------------------------------- construction
    def normalise_arch_name(self, arch: str) -> str:
        return arch.lower().replace('-', '_')

    def _parse_arch(self, arch: str | dict) -> tuple[str, dict[str, Any]]:
        name = type(self).__name__
        if isinstance(arch, str):
            key = self.normalise_arch_name(arch)
            if key not in self.arch_zoo:
                raise ValueError(f'unknown {name} arch {arch!r}; valid archs: {sorted(self.arch_zoo)} '
                                 f'or a dict with keys {list(self.arch_keys)}')
            return key, self.arch_zoo[key]
        if not isinstance(arch, dict):
            raise TypeError(f'{name} arch must be a name or a dict, got {type(arch).__name__}')
        required, allowed = set(self.arch_keys), set(self.arch_keys) | self.optional_arch_keys
        missing, unknown = required - set(arch), set(arch) - allowed
        if missing or unknown:
            optional = f' (optional: {sorted(self.optional_arch_keys)})' if self.optional_arch_keys else ''
            raise ValueError(f'{name} arch dict needs the keys {sorted(required)}{optional}; '
                             f'missing {sorted(missing)}, unknown {sorted(unknown)}')
        lengths = {key: len(arch[key]) for key in self.arch_keys}
        if len(set(lengths.values())) != 1 or lengths['depths'] not in self.stage_counts:
            counts = self.stage_counts
            allowed_counts = f'{counts[0]} to {counts[-1]}' if len(counts) > 1 else f'{counts[0]}'
            raise ValueError(f'{name} arch dict lists must have one entry per stage ({allowed_counts} '
                             f'stages), got lengths {lengths}')
        return 'custom', dict(arch)

    def _parse_out_indices(self, out_indices: Sequence[int] | int) -> tuple[int, ...]:
        if isinstance(out_indices, int) and not isinstance(out_indices, bool):
            indices = (out_indices, )
        elif isinstance(out_indices, Sequence) and not isinstance(out_indices, str):
            indices = tuple(out_indices)
        else:  # None, a str, a set ...: the same message as an out-of-range index
            indices = ()
        valid = range(-self.num_stages, self.num_stages)
        if not indices or any(isinstance(i, bool) or not isinstance(i, int) or i not in valid
                              for i in indices):
            raise ValueError(
                f'out_indices={out_indices!r} is out of range: {type(self).__name__} has '
                f'{self.num_stages} stages, use indices in 0..{self.num_stages - 1}')
        indices = tuple(i % self.num_stages for i in indices)
        if len(set(indices)) != len(indices):
            raise ValueError(f'out_indices={out_indices!r} repeats a stage')
        return indices

    # ---------------------------------------------------------------------------------- weights
    def init_weights(self) -> None:
        """``init_cfg=dict(type='Pretrained', checkpoint=...)`` goes through pvt_det's strict,
        layout-detecting loader; any other ``init_cfg`` goes to mmengine."""
        init_cfg = self.init_cfg
        if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
            if not init_cfg.get('checkpoint'):
                raise CheckpointError(
                    f'{type(self).__name__} init_cfg {init_cfg} needs checkpoint=PATH_OR_URL '
                    f'(or set init_cfg=None to train from scratch)')
            load_pretrained(self, init_cfg['checkpoint'], self.family, prefix=init_cfg.get('prefix'))
            self._is_init = True
            return
        super().init_weights()

    def _load_from_state_dict(self, state_dict: dict, prefix: str, local_metadata: dict, strict: bool,
                              missing_keys: list[str], unexpected_keys: list[str],
                              error_msgs: list[str]) -> None:
        """Accept every registered checkpoint layout wherever this backbone sits (``prefix``): a whole detector
        or segmentor checkpoint in the official, mmdet, Hugging Face or timm layout loads through
        ``load_state_dict`` / mmengine's ``load_checkpoint`` with no conversion step. Our own layout passes
        untouched. torch and mmengine hand the children the keys of this (now converted) dict."""
        try:
            convert_backbone_keys(state_dict, prefix, self, self.family)
        except UnknownLayoutError:
            pass  # no layout of ours: left as they are, torch reports them as unexpected (and ours as missing)
        except CheckpointError as error:  # reported like a shape mismatch: torch raises, mmengine logs
            error_msgs.append(f'{prefix or type(self).__name__}: {error}')
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    # ------------------------------------------------------------------------------- train mode
    def _freeze_stages(self) -> None:
        for stage in self.stages[:self.frozen_stages + 1]:
            stage.eval()
            for param in stage.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> PyramidBackbone:
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    # ---------------------------------------------------------------------------------- forward
    def selected_maps(self, maps: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """The maps of ``out_indices`` as contiguous NCHW tensors, as ResNet returns them: the stages compute
        channels-last views, and mmcv's deformable convolutions (RepPoints, DDOD, Cascade RPN, Guided
        Anchoring heads) refuse non-contiguous inputs."""
        return tuple(maps[i].contiguous() for i in self.out_indices)

    # ------------------------------------------------------------- timm / transformers feature APIs
    # What timm's and transformers' code (and their test suites) call on a backbone, next to mm*'s ``forward``:
    # the same stages, no second implementation. ``out_indices`` stays mm*'s (0-based stage numbers), which is
    # also transformers' numbering for PVT v2, whose ``stage_names`` have no 'stem' (PvtV2Backbone).
    @property
    def stage_names(self) -> list[str]:
        """transformers' names of the stages: ``['stage1', ..., 'stageN']`` (as ``PvtV2Backbone``)."""
        return [f'stage{i + 1}' for i in range(self.num_stages)]

    @property
    def out_features(self) -> list[str]:
        """transformers' names of the stages ``forward`` returns (``out_indices``)."""
        return [self.stage_names[i] for i in self.out_indices]

    @property
    def num_features(self) -> list[int]:
        """transformers: the channels of every stage, in ``stage_names`` order."""
        return [int(dim) for dim in self.arch_settings['embed_dims']]

    @property
    def channels(self) -> list[int]:
        """transformers: the channels of the maps ``forward`` returns (= ``out_channels``)."""
        return list(self.out_channels)

    @property
    def out_feature_channels(self) -> dict[str, int]:
        return dict(zip(self.stage_names, self.num_features))

    @property
    def feature_info(self) -> list[dict[str, Any]]:
        """timm's ``feature_info``: per stage its channels, stride and module name."""
        reductions = [math.prod(self.strides[:i + 1]) for i in range(self.num_stages)]
        return [dict(num_chs=channels, reduction=reduction, module=f'stages.{i}')
                for i, (channels, reduction) in enumerate(zip(self.num_features, reductions))]

    def stage_forward(self, stage: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """One stage: NCHW map in, NCHW map out (CvT's stages also return their cls token)."""
        out = stage(x)
        return out[0] if isinstance(out, tuple) else out

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: int | Sequence[int] | None = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = 'NCHW',
            intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """timm's ``forward_intermediates`` (as its ``pvt_v2``): the maps of the stages ``indices`` selects
        (None: all; an int n: the last n; a sequence: those, negative from the end) and the last stage's map.

        ``norm`` is accepted and has nothing to do (the stages end with their own norm, no final norm here);
        ``stop_early`` stops after the last selected stage (the returned final map is then that stage's).
        ``out_indices`` plays no part: this is timm's interface, ``forward`` is mm*'s.
        """
        if output_fmt != 'NCHW':
            raise ValueError(f'{self.display_name}.forward_intermediates: output_fmt={output_fmt!r}; only '
                             f"'NCHW' is supported (as timm's pvt_v2)")
        take_indices, max_index = self.feature_take_indices(indices)
        self.check_input(x)
        stages = self.stages[:max_index + 1] if stop_early else self.stages
        intermediates = []
        for i, stage in enumerate(stages):
            x = self.stage_forward(stage, x)
            if i in take_indices:
                intermediates.append(x.contiguous())
        if intermediates_only:
            return intermediates
        return x.contiguous(), intermediates

    def feature_take_indices(self, indices: int | Sequence[int] | None) -> tuple[list[int], int]:
        """timm's ``feature_take_indices`` over this backbone's stages, with pvt_det's one-line errors."""
        n = self.num_stages
        if indices is None:
            indices = n
        if isinstance(indices, int) and not isinstance(indices, bool):
            if not 0 < indices <= n:
                raise ValueError(f'indices={indices} (the last n stages) is out of range: use 1 to {n}')
            take = list(range(n - indices, n))
        else:
            take = []
            for i in indices:
                index = n + i if i < 0 else i
                if not 0 <= index < n:
                    raise ValueError(f'feature index {i} is out of range: {self.display_name} has {n} '
                                     f'stages (0 to {n - 1}, or negative from the end)')
                take.append(index)
            if not take:
                raise ValueError('indices is empty: name at least one stage')
        return take, max(take)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """timm's ``forward_features``: the last stage's map."""
        self.check_input(x)
        for stage in self.stages:
            x = self.stage_forward(stage, x)
        return x.contiguous()

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """timm's switch for gradient checkpointing (mm*'s ``with_cp``)."""
        self.with_cp = enable
        for stage in self.stages:
            stage.with_cp = enable

    def check_input(self, x: torch.Tensor) -> None:
        """Clear errors for what the convolutions would otherwise report deep inside the stack."""
        name = self.display_name
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f'{name} expects an (N, C, H, W) image tensor, got {shape}')
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f'{name} was built with in_channels={self.in_channels} but the input has '
                f'{x.shape[1]} channels (shape {tuple(x.shape)}); pass in_channels={x.shape[1]}')
        if x.shape[2] < self.min_input_size or x.shape[3] < self.min_input_size:
            raise ValueError(
                f'input of {x.shape[2]}x{x.shape[3]} pixels is too small for {name}: height and '
                f'width must be at least {self.min_input_size}; resize or pad the image')

"""Whole-model checkpoints that fit, or a clear error before anything runs on them.

:class:`CheckpointFitHook` runs in mmengine's ``after_load_checkpoint`` (``Runner.load_checkpoint`` calls it with
the loaded file before loading it into the model): it converts every pvt_det backbone's part from the layout it
was saved in and checks the whole state dict against the model with
:func:`pvt_det.models.model_checkpoint.fit_state_dict`:

* resuming (``--resume``, ``resume=True``) and evaluating (``tools/test.py``): exact, or an error;
* ``load_from`` while training (fine-tuning): backbone and neck exact; head keys whose class count differs are
  skipped with one warning naming them.

``tools/train.py`` gets the hook from :func:`pvt_det.engine.prepare_training_config`; ``tools/test.py`` from
:func:`require_exact_checkpoint`.
"""
from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from mmengine.config import Config, ConfigDict
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS
from mmengine.runner import BaseLoop

from ..models.model_checkpoint import POLICIES, fit_state_dict, state_dict_of

__all__ = ['CheckpointFitHook', 'require_exact_checkpoint', 'add_checkpoint_fit_hook']


@HOOKS.register_module()
class CheckpointFitHook(Hook):
    """Convert and check every checkpoint the runner loads (see the module docstring).

    Args:
        policy: ``'exact'``, ``'finetune'``, or ``None`` to decide per load: ``'finetune'`` for ``load_from`` at
            the start of training, ``'exact'`` when resuming or when the runner tests/validates.
    """

    priority = 'VERY_HIGH'  # before any other hook reads the checkpoint

    def __init__(self, policy: str | None = None) -> None:
        if policy is not None and policy not in POLICIES:
            raise ValueError(f'CheckpointFitHook policy={policy!r}; use one of {POLICIES} or None')
        self.policy = policy

    def policy_for(self, runner) -> str:
        if self.policy is not None:
            return self.policy
        # Runner.train() builds its loop before loading; Runner.test()/val() never build it.
        training = isinstance(getattr(runner, '_train_loop', None), BaseLoop)
        return 'finetune' if training and not runner._resume else 'exact'

    def after_load_checkpoint(self, runner, checkpoint: MutableMapping[str, Any]) -> None:
        policy = self.policy_for(runner)
        source = str(getattr(runner, '_load_from', None) or 'the checkpoint')
        state_dict = state_dict_of(checkpoint)
        report = fit_state_dict(runner.model, state_dict, policy, source, meta=checkpoint.get('meta'))
        if 'state_dict' in checkpoint:
            checkpoint['state_dict'] = report.state_dict
        else:  # a bare state dict: mmengine loads the mapping itself
            checkpoint.clear()
            checkpoint.update(report.state_dict)
        converted = {prefix: name for prefix, name in report.layouts.items() if name != 'pvt_det'}
        if converted:
            print_log(f'{source}: converted ' + ', '.join(f'{prefix}* from the {name} layout'
                                                          for prefix, name in converted.items()),
                      logger='current')
        if report.skipped:
            print_log(report.skipped_message(source), logger='current', level=30)  # logging.WARNING


def add_checkpoint_fit_hook(cfg: Config, policy: str | None = None) -> Config:
    """Put one :class:`CheckpointFitHook` with ``policy`` into ``cfg.custom_hooks`` (replacing any other one)."""
    hooks = [hook for hook in (cfg.get('custom_hooks', None) or [])
             if hook.get('type') not in ('CheckpointFitHook', CheckpointFitHook)]
    hooks.append(ConfigDict(type='CheckpointFitHook', policy=policy))
    cfg.custom_hooks = hooks
    return cfg


def require_exact_checkpoint(cfg: Config) -> Config:
    """``tools/test.py``: the checkpoint must fit the built model exactly, or the run stops before evaluating."""
    return add_checkpoint_fit_hook(cfg, 'exact')

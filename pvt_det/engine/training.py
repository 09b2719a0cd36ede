"""Config edits that ``tools/train.py`` applies before building the runner."""
from __future__ import annotations

from mmengine.config import Config, ConfigDict

_LOOP_REPLACEMENTS = {
    'EpochBasedTrainLoop': 'ResumableEpochBasedTrainLoop',
    'IterBasedTrainLoop': 'ResumableIterBasedTrainLoop',
}


def prepare_training_config(cfg: Config) -> Config:
    """Make a training config safe to kill and resume, and stop it at the first non-finite loss.

    Swaps mmengine's ``CheckpointHook`` and train loops for the pvt_det subclasses (same arguments)
    and adds ``FiniteLossHook`` and ``CheckpointFitHook`` (``load_from``/``resume`` in any backbone layout,
    checked: see :mod:`pvt_det.engine.checkpoint_fit`). Edits ``cfg`` in place and returns it.
    """
    from . import hooks, loops  # noqa: F401  (registers the classes)
    from .checkpoint_fit import add_checkpoint_fit_hook

    checkpoint = cfg.get('default_hooks', {}).get('checkpoint')
    if checkpoint is not None and checkpoint.get('type') in ('CheckpointHook',
                                                             'mmengine.CheckpointHook'):
        checkpoint.type = 'SafeCheckpointHook'

    train_cfg = cfg.get('train_cfg')
    if train_cfg is not None:
        loop_type = train_cfg.get('type')
        if loop_type is None and 'by_epoch' in train_cfg:  # mmengine's short form
            loop_type = 'EpochBasedTrainLoop' if train_cfg.pop('by_epoch') else 'IterBasedTrainLoop'
        if loop_type in _LOOP_REPLACEMENTS:
            train_cfg.type = _LOOP_REPLACEMENTS[loop_type]

    custom_hooks = list(cfg.get('custom_hooks', None) or [])
    if not any(hook.get('type') == 'FiniteLossHook' for hook in custom_hooks):
        custom_hooks.append(ConfigDict(type='FiniteLossHook'))
    cfg.custom_hooks = custom_hooks
    if not any(hook.get('type') == 'CheckpointFitHook' for hook in custom_hooks):
        add_checkpoint_fit_hook(cfg)  # policy decided per load: fine-tune for load_from, exact for resume
    return cfg

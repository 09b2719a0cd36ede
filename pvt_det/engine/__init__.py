"""Training reliability for mmengine runs: nothing lost, every failure clear, resume exact.

* :class:`SafeCheckpointHook` writes checkpoints and the ``last_checkpoint`` pointer atomically and
  prunes old checkpoints only after the new one is on disk; it refuses to save NaN/Inf weights.
* :class:`FiniteLossHook` stops a run at the first NaN/Inf loss, before a NaN checkpoint is written.
* :class:`ResumableEpochBasedTrainLoop` / :class:`ResumableIterBasedTrainLoop` resume mid-epoch
  at the exact batch with the exact random state, so a resumed run repeats an uninterrupted one.

:func:`prepare_training_config` switches a config to these; ``tools/train.py`` applies it through
``pvt_det.tools.train.prepare_train_config``.
``--amp`` on CPU (bfloat16) is :class:`CPUAmpOptimWrapper`.
:class:`CheckpointFitHook` converts every checkpoint the runner loads (any backbone layout) and checks it: exact
for ``--resume`` and ``tools/test.py`` (:func:`require_exact_checkpoint`), class-count-tolerant heads for
``load_from`` fine-tuning.
"""
from .amp import CPUAmpOptimWrapper
from .checkpoint_fit import CheckpointFitHook, add_checkpoint_fit_hook, require_exact_checkpoint
from .hooks import FiniteLossHook, NonFiniteLossError, NonFiniteWeightsError, SafeCheckpointHook
from .loops import ResumableEpochBasedTrainLoop, ResumableIterBasedTrainLoop
from .training import prepare_training_config

__all__ = [
    'CPUAmpOptimWrapper', 'CheckpointFitHook', 'add_checkpoint_fit_hook', 'require_exact_checkpoint',
    'SafeCheckpointHook', 'FiniteLossHook', 'NonFiniteLossError', 'NonFiniteWeightsError',
    'ResumableEpochBasedTrainLoop', 'ResumableIterBasedTrainLoop', 'prepare_training_config'
]

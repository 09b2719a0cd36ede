"""Hooks that keep a training run from losing work or silently going wrong."""
from __future__ import annotations

import functools
import glob
import math
import os
import os.path as osp
from typing import Any, Callable, Optional

import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size, is_main_process
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS

from ..fileio import TMP_PREFIX, atomic_write_text, fsync_file
from .rng import capture_rng_state


def _save_then_rename(save: Callable[..., None], out_dir: str, filename: str, *args, **kwargs) -> None:
    """``save(out_dir, TMP_PREFIX + filename, ...)`` (e.g. ``runner.save_checkpoint``), then, on the rank that
    writes files, flush it to disk and rename it to ``filename``: a kill in between leaves the old file."""
    save(out_dir, TMP_PREFIX + filename, *args, **kwargs)
    if is_main_process():
        tmp_path = osp.join(out_dir, TMP_PREFIX + filename)
        fsync_file(tmp_path)
        os.replace(tmp_path, osp.join(out_dir, filename))


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` with five changes, all about not losing work:

    * the checkpoint is written to ``.tmp-<name>`` and renamed into place, and
      ``last_checkpoint`` is replaced atomically, so a kill while saving leaves the previous
      checkpoint and pointer valid;
    * with ``max_keep_ckpts``, the oldest checkpoint is deleted *after* the new one is complete
      (mmengine deletes it before saving, so a kill while saving can leave nothing to resume from);
    * likewise with ``save_best``: the new best checkpoint is written atomically and only then is the
      previous best deleted (mmengine deletes it first);
    * the random state of every rank goes into the checkpoint, so that a ``Resumable*TrainLoop``
      continues with exactly the random numbers an uninterrupted run would have drawn;
    * weights containing NaN/Inf are never saved (:class:`NonFiniteWeightsError`).

    Checkpoints for non-local ``out_dir`` backends (e.g. S3) are written by mmengine's code.
    """

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if is_main_process() and isinstance(self.file_backend, LocalBackend):
            for leftover in glob.glob(osp.join(self.out_dir, TMP_PREFIX + '*')):
                os.remove(leftover)  # a previous run was killed while saving this

    def _save_checkpoint_with_step(self, runner, step: int, meta: dict) -> None:
        # Collective: every rank reaches this call at the same step.
        self._rng_states: Optional[list] = all_gather_object(capture_rng_state())
        try:
            if isinstance(self.file_backend, LocalBackend):
                self._save_atomically(runner, step, meta)
            else:
                super()._save_checkpoint_with_step(runner, step, meta)
        finally:
            self._rng_states = None

    def _save_atomically(self, runner, step: int, meta: dict) -> None:
        outdated_step = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated_step = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))

        self._previous_ckpt = runner.message_hub.get_info('last_ckpt')
        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        _save_then_rename(runner.save_checkpoint, self.out_dir, ckpt_filename, self.file_client_args,
                          save_optimizer=self.save_optimizer, save_param_scheduler=self.save_param_scheduler,
                          meta=meta, by_epoch=self.by_epoch, backend_args=self.backend_args, **self.args)
        if not is_main_process():  # only rank 0 writes files
            return
        atomic_write_text(osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt)
        if outdated_step is not None:
            outdated = self.file_backend.join_path(self.out_dir,
                                                   self.filename_tmpl.format(outdated_step))
            if osp.isfile(outdated):
                os.remove(outdated)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        if not (self.save_best and isinstance(self.file_backend, LocalBackend)):
            return super()._save_best_checkpoint(runner, metrics)
        # mmengine's method removes the previous best, then saves the new one: run it with the removal
        # deferred and the save made atomic, then remove what it wanted removed.
        superseded: list[str] = []
        self.file_backend.remove = superseded.append  # instance attributes shadow the methods...
        runner.save_checkpoint = functools.partial(_save_then_rename, runner.save_checkpoint)
        try:
            super()._save_best_checkpoint(runner, metrics)
        finally:
            del self.file_backend.remove, runner.save_checkpoint  # ...until deleted
        current = {getattr(self, 'best_ckpt_path', None), *getattr(self, 'best_ckpt_path_dict', {}).values()}
        for path in superseded:
            if path not in current and osp.isfile(path):
                os.remove(path)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # A finite loss does not guarantee finite weights (e.g. a NaN gradient of a weight that only
        # ever multiplies zero padding): never write a checkpoint that cannot be trained further.
        bad = [
            name for name, value in checkpoint.get('state_dict', {}).items()
            if isinstance(value, torch.Tensor) and value.is_floating_point()
            and not torch.isfinite(value).all()
        ]
        if bad:
            last_ckpt = getattr(self, '_previous_ckpt', None)
            raise NonFiniteWeightsError(
                f'weights became NaN/Inf by iteration {runner.iter + 1} (epoch {runner.epoch + 1}) '
                f'in {len(bad)} tensors: {", ".join(bad[:5])}{" ..." if len(bad) > 5 else ""}; '
                f'not saving them. Last good checkpoint: {last_ckpt or "none"}. Lower the learning '
                'rate or add '
                'optim_wrapper.clip_grad=dict(max_norm=35, norm_type=2)' +
                ('; with --amp on CPU, try without it' if 'Amp' in
                 type(runner.optim_wrapper).__name__ else ''))
        if getattr(self, '_rng_states', None):
            checkpoint['rng_states'] = self._rng_states

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        from .loops import ResumableLoopMixin
        states = checkpoint.get('rng_states')
        loop = getattr(runner, '_train_loop', None)
        if not states or not isinstance(loop, ResumableLoopMixin):
            return
        if len(states) != get_world_size():
            print_log(
                f'checkpoint holds the random state of {len(states)} processes but this run has '
                f'{get_world_size()}: random numbers after resuming will differ from an '
                'uninterrupted run', logger='current', level=30)
            return
        loop.resume_rng_state = states[get_rank()]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


class NonFiniteWeightsError(RuntimeError):
    """The model weights became NaN or infinite although the loss stayed finite."""


def _as_float(value: Any) -> float:
    if isinstance(value, torch.Tensor):
        return float(value.detach().float().mean()) if value.numel() else 0.0
    return float(value)


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Stop training at the first iteration whose loss is NaN or infinite.

    Runs before every other ``after_train_iter`` hook (``CheckpointHook`` runs last), so the weights
    that the non-finite step produced are never written to a checkpoint.
    """

    priority = 'VERY_HIGH'

    def after_train_iter(self, runner, batch_idx: int, data_batch: Any = None,
                         outputs: Optional[dict] = None) -> None:
        if not outputs or 'loss' not in outputs:
            return
        total = _as_float(outputs['loss'])
        if math.isfinite(total):
            return
        parts = ', '.join(
            f'{name}={_as_float(value)}' for name, value in outputs.items()
            if name != 'loss' and 'loss' in name and not math.isfinite(_as_float(value)))
        last_ckpt = runner.message_hub.get_info('last_ckpt')
        raise NonFiniteLossError(
            f'loss is {total} at iteration {runner.iter + 1} (epoch {runner.epoch + 1}, batch '
            f'{batch_idx + 1}){"; non-finite terms: " + parts if parts else ""}. Training stopped '
            'before saving these weights; ' + (f'last good checkpoint: {last_ckpt}. '
                                               if last_ckpt else 'no checkpoint was saved yet. ') +
            'Lower optim_wrapper.optimizer.lr, add optim_wrapper.clip_grad=dict(max_norm=35, '
            'norm_type=2), or check the annotations for degenerate boxes.')

"""pvt_det.engine on a toy model (fast, in-process): atomic checkpoints, NaN stop, exact resume,
CPU AMP."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.registry import HOOKS
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset

import pvt_det  # noqa: F401
from pvt_det.engine import NonFiniteLossError, NonFiniteWeightsError, prepare_training_config
from pvt_det.engine.hooks import TMP_PREFIX


class NoisyDataset(Dataset):
    """Augmentation draws from numpy's global RNG, like mmdet's RandomFlip does."""

    def __init__(self, size: int = 6) -> None:
        self.inputs = torch.linspace(-1, 1, size * 4).reshape(size, 4)

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> dict:
        noise = torch.from_numpy(np.random.normal(0, 0.1, 4)).float()
        return dict(inputs=self.inputs[index] + noise,
                    target=self.inputs[index].sum(0, keepdim=True))


class ToyModel(BaseModel):
    """Dropout draws from torch's RNG; ``nan_at_iter`` makes that iteration's loss NaN."""

    def __init__(self, nan_at_iter: int | None = None) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.Dropout(0.3), nn.Linear(16, 1))
        self.spare = nn.Parameter(torch.zeros(2))  # saved, never used by the loss
        self.nan_at_iter = nan_at_iter
        self.calls = 0
        self.autocast_dtypes: list[torch.dtype] = []

    def forward(self, inputs, target=None, mode='loss'):
        self.calls += 1
        out = self.net(inputs)
        self.autocast_dtypes.append(out.dtype)
        loss = ((out.float() - target)**2).mean()
        if self.nan_at_iter is not None and self.calls == self.nan_at_iter:
            loss = loss * float('nan')
        return dict(loss=loss)


class RecordLoss(Hook):
    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self.losses: dict[int, float] = {}

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.losses[runner.iter + 1] = float(outputs['loss'])


class SimulatedKill(BaseException):
    """Stands in for SIGKILL: nothing after the raise point runs (not even `except Exception`)."""


class KillAfterIter(Hook):
    priority = 'LOWEST'  # after CheckpointHook (VERY_LOW) has saved

    def __init__(self, at_iter: int) -> None:
        self.at_iter = at_iter

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.at_iter:
            raise SimulatedKill


def make_runner(work_dir, model=None, max_epochs=3, checkpoint=None, hooks=(), resume=False,
                loop='EpochBasedTrainLoop', optim_wrapper=None, harden=True) -> Runner:
    from mmengine.config import Config
    cfg = Config(
        dict(
            # 6 samples, batch 2: 3 iterations per epoch.
            train_cfg=dict(
                type=loop,
                **({
                    'max_epochs': max_epochs
                } if 'Epoch' in loop else {
                    'max_iters': 3 * max_epochs
                })),
            default_hooks=dict(
                checkpoint=checkpoint or dict(type='CheckpointHook', interval=2, by_epoch=False),
                logger=dict(type='LoggerHook', interval=1)),
            custom_hooks=[]))
    if harden:
        prepare_training_config(cfg)
    torch.manual_seed(0)  # same initial weights in every run
    return Runner(
        model=model or ToyModel(), work_dir=str(work_dir), experiment_name='toy',
        train_dataloader=dict(dataset=NoisyDataset(), batch_size=2, num_workers=0,
                              collate_fn=dict(type='default_collate'),
                              sampler=dict(type='DefaultSampler',
                                           shuffle=True)), optim_wrapper=optim_wrapper
        or dict(optimizer=dict(type='AdamW', lr=0.01)), param_scheduler=[
            dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=5),
            dict(type='MultiStepLR', by_epoch=False, milestones=[6], gamma=0.5)
        ], train_cfg=cfg.train_cfg.to_dict(), default_hooks=cfg.default_hooks.to_dict(),
        custom_hooks=[h.to_dict() for h in cfg.custom_hooks] + list(hooks),
        randomness=dict(seed=0, deterministic=True), resume=resume, default_scope='mmengine')


def test_prepare_training_config_swaps_in_safe_classes():
    from mmengine.config import Config
    cfg = Config(
        dict(default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=3)),
             train_cfg=dict(type='EpochBasedTrainLoop', max_epochs=2)))
    prepare_training_config(cfg)
    assert cfg.default_hooks.checkpoint == dict(type='SafeCheckpointHook', interval=3)
    assert cfg.train_cfg.type == 'ResumableEpochBasedTrainLoop'
    assert [h.type for h in cfg.custom_hooks] == ['FiniteLossHook', 'CheckpointFitHook']
    prepare_training_config(cfg)  # idempotent
    assert [h.type for h in cfg.custom_hooks] == ['FiniteLossHook', 'CheckpointFitHook']


# ------------------------------------------------------------------------------ atomic checkpoints
def _crash_on_checkpoint_write(monkeypatch, crash_at: int = 2):
    """Make the checkpoint writer die halfway through the ``crash_at``-th checkpoint it writes."""
    original_put = LocalBackend.put
    writes = []

    def put(self, obj, filepath):
        writes.append(filepath)
        if len(writes) == crash_at:
            with open(filepath, 'wb') as f:
                f.write(obj[:len(obj) // 2])
            raise SimulatedKill
        return original_put(self, obj, filepath)

    monkeypatch.setattr(LocalBackend, 'put', put)


@pytest.mark.parametrize(
    'checkpoint',
    [
        dict(interval=1, by_epoch=False,
             filename_tmpl='latest.pth'),  # one file, overwritten in place
        dict(interval=1, by_epoch=False,
             max_keep_ckpts=1),  # mmengine deletes the old one before saving
    ],
    ids=['same-file', 'max-keep-1'])
@pytest.mark.parametrize('hook_type', ['SafeCheckpointHook', 'CheckpointHook'])
def test_kill_while_saving_keeps_previous_checkpoint(tmp_path, monkeypatch, checkpoint, hook_type):
    _crash_on_checkpoint_write(monkeypatch)
    runner = make_runner(tmp_path, checkpoint=dict(type=hook_type, **checkpoint), harden=False,
                         loop='ResumableEpochBasedTrainLoop')
    with pytest.raises(SimulatedKill):
        runner.train()
    pointer = (tmp_path / 'last_checkpoint').read_text()
    first = str(tmp_path / checkpoint.get('filename_tmpl', 'iter_{}.pth').format(1))
    if hook_type == 'CheckpointHook':
        # Documents why SafeCheckpointHook exists: mmengine's hook loses the only good checkpoint.
        with pytest.raises(Exception):
            torch.load(pointer, weights_only=False)
        return
    assert pointer == first
    state = torch.load(pointer, weights_only=True)
    assert state['meta']['iter'] == 1
    monkeypatch.undo()
    # The next run removes the half-written temporary file and resumes from the good checkpoint.
    resumed = make_runner(tmp_path, checkpoint=dict(type=hook_type, **checkpoint), max_epochs=1,
                          resume=True, harden=False, loop='ResumableEpochBasedTrainLoop')
    resumed.train()
    assert not [f for f in os.listdir(tmp_path) if f.startswith(TMP_PREFIX)]
    assert resumed.iter == 3


# ------------------------------------------------------------------------------ NaN loss
def test_nan_loss_stops_run_before_nan_checkpoint(tmp_path):
    runner = make_runner(tmp_path, model=ToyModel(nan_at_iter=3),
                         checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False))
    with pytest.raises(NonFiniteLossError,
                       match=r'loss is nan at iteration 3 \(epoch 1, batch 3\)') as err:
        runner.train()
    assert str(tmp_path / 'iter_2.pth') in str(err.value)  # names the last good checkpoint
    assert 'clip_grad' in str(err.value)  # and says what to change
    assert not (tmp_path / 'iter_3.pth').exists()
    state = torch.load(tmp_path / 'iter_2.pth', weights_only=True)['state_dict']
    assert all(torch.isfinite(v).all() for v in state.values())


class CorruptSpareWeightAt(Hook):

    def __init__(self, at_iter: int) -> None:
        self.at_iter = at_iter

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.at_iter:
            runner.model.spare.data.fill_(float('inf'))


def test_non_finite_weights_with_finite_loss_are_never_saved(tmp_path):
    runner = make_runner(tmp_path, hooks=[CorruptSpareWeightAt(3)],
                         checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False))
    with pytest.raises(NonFiniteWeightsError,
                       match=r'by iteration 3 .* in 1 tensors: spare;.*iter_2\.pth'):
        runner.train()
    assert (tmp_path / 'last_checkpoint').read_text().endswith('iter_2.pth')
    assert not (tmp_path / 'iter_3.pth').exists()
    assert not [f for f in os.listdir(tmp_path) if f.startswith(TMP_PREFIX)]


# ------------------------------------------------------------------------------ exact resume
@pytest.mark.parametrize('loop', ['EpochBasedTrainLoop', 'IterBasedTrainLoop'])
@pytest.mark.parametrize('kill_at', [4, 6])  # mid-epoch (3 batches/epoch) and at an epoch end
def test_resume_after_kill_repeats_uninterrupted_run(tmp_path, loop, kill_at):
    reference = RecordLoss()
    runner = make_runner(tmp_path / 'ref', hooks=[reference], loop=loop)
    runner.train()
    assert len(reference.losses) == 9

    first = RecordLoss()
    with pytest.raises(SimulatedKill):
        make_runner(tmp_path / 'run', hooks=[first, KillAfterIter(kill_at + 1)], loop=loop).train()
    assert (tmp_path / 'run' / 'last_checkpoint').read_text().endswith(f'iter_{kill_at}.pth')
    second = RecordLoss()
    resumed = make_runner(tmp_path / 'run', hooks=[second], loop=loop, resume=True)
    resumed.train()
    assert min(second.losses) == kill_at + 1  # continued at the next iteration
    assert resumed.iter == 9
    assert second.losses == {i: reference.losses[i] for i in range(kill_at + 1, 10)}
    assert resumed.optim_wrapper.get_lr() == runner.optim_wrapper.get_lr()
    for a, b in zip(resumed.model.parameters(), runner.model.parameters()):
        assert torch.equal(a, b)


# ------------------------------------------------------------------------------ --amp on CPU
@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU mixed precision')
def test_amp_on_cpu_trains_in_bfloat16(tmp_path):
    from pvt_det.tools.run_options import enable_amp
    from mmengine.config import Config
    cfg = Config(
        dict(optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=0.01))))
    enable_amp(cfg)  # what `tools/train.py --amp` does
    assert cfg.optim_wrapper.type == 'CPUAmpOptimWrapper' and cfg.optim_wrapper.dtype == 'bfloat16'
    model, losses = ToyModel(), RecordLoss()
    make_runner(tmp_path, model=model, max_epochs=8, hooks=[losses],
                optim_wrapper=cfg.optim_wrapper.to_dict()).train()
    assert set(model.autocast_dtypes) == {torch.bfloat16}  # the forward ran under bf16 autocast
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32
    first, last = np.mean(list(losses.losses.values())[:6]), np.mean(
        list(losses.losses.values())[-6:])
    assert np.isfinite(last) and last < 0.75 * first, (first, last)  # measured: 6.27 -> 3.42


# ------------------------------------------------------------------------------ torchrun without CUDA
@pytest.mark.skipif(torch.cuda.is_available(), reason='the CPU-only code path')
def test_pytorch_launcher_initialises_without_cuda(monkeypatch):
    """mmengine's launcher calls torch.cuda.set_device, which fails on CPU-only torch; pvt_det.compat
    skips that call (tools/dist_train.sh depends on it)."""
    import socket
    from mmengine.dist import init_dist
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    for key, value in dict(RANK='0', LOCAL_RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1',
                           MASTER_PORT=str(port)).items():
        monkeypatch.setenv(key, value)
    init_dist('pytorch', backend='gloo')
    try:
        assert torch.distributed.get_world_size() == 1
        assert torch.distributed.get_backend() == 'gloo'
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.parametrize('hook_type', ['SafeCheckpointHook', 'CheckpointHook'])
def test_kill_while_saving_a_new_best_keeps_the_previous_best(tmp_path, monkeypatch, hook_type):
    runner = make_runner(tmp_path, harden=False)
    for key in ('best_score', 'best_ckpt'):  # the message hub outlives runners of the same experiment name
        runner.message_hub.runtime_info.pop(key, None)
    hook = HOOKS.build(dict(type=hook_type, interval=1, by_epoch=False, save_best='acc', rule='greater'))
    hook.before_train(runner)
    for step, score in ((2, 0.5), (3, 0.6)):  # a better score replaces the best checkpoint
        runner.train_loop._iter = step
        hook._save_best_checkpoint(runner, dict(acc=score))
    best = tmp_path / 'best_acc_iter_3.pth'
    assert not (tmp_path / 'best_acc_iter_2.pth').exists()
    assert torch.load(best, weights_only=True)['meta']['iter'] == 3
    runner.train_loop._iter = 4
    _crash_on_checkpoint_write(monkeypatch, crash_at=1)
    with pytest.raises(SimulatedKill):
        hook._save_best_checkpoint(runner, dict(acc=0.7))  # better again, and the process dies mid-write
    if hook_type == 'CheckpointHook':
        assert not best.exists()  # why SafeCheckpointHook exists: mmengine deleted it first
        return
    assert torch.load(best, weights_only=True)['meta']['iter'] == 3
    assert not (tmp_path / 'best_acc_iter_4.pth').exists()  # no truncated file under the final name

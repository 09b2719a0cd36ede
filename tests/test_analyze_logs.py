"""tools/analyze_logs.py on the scalars.json that a real mmengine run writes: loss, lr and the validation metric
are drawn at the iterations they were logged at."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from pvt_det.tools import analyze_logs




def run_toy_training(work_dir, epoch_based: bool) -> None:
    """A real mmengine Runner: 2 epochs / 6 iterations of linear regression, validated twice."""
    from mmengine.evaluator import BaseMetric
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class Model(BaseModel):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(2, 1)

        def forward(self, inputs, labels, mode='tensor'):
            error = self.linear(inputs).squeeze(-1) - labels
            return dict(loss=(error ** 2).mean()) if mode == 'loss' else [error]

    class MeanSquaredError(BaseMetric):
        def process(self, data_batch, data_samples):
            self.results.extend(data_samples[0].pow(2).tolist())

        def compute_metrics(self, results):
            return dict(mse=sum(results) / len(results))

    gen = torch.Generator().manual_seed(0)
    points = torch.randn(6, 2, generator=gen)
    data = [dict(inputs=p, labels=p @ torch.tensor([2.0, -1.0]) + 0.5) for p in points]
    loader = dict(dataset=data, sampler=dict(type='DefaultSampler', shuffle=False), batch_size=2,
                  collate_fn=dict(type='default_collate'))
    loop = dict(by_epoch=True, max_epochs=2, val_interval=1) if epoch_based else \
        dict(by_epoch=False, max_iters=6, val_interval=3)
    runner = Runner(model=Model(), work_dir=str(work_dir), train_dataloader=loader, val_dataloader=loader,
                    val_evaluator=[MeanSquaredError()], train_cfg=loop, val_cfg=dict(),
                    optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
                    param_scheduler=dict(type='LinearLR', start_factor=0.2, by_epoch=False, begin=0, end=6),
                    default_hooks=dict(logger=dict(type='LoggerHook', interval=1),
                                       checkpoint=dict(type='CheckpointHook', interval=100, save_last=False)),
                    default_scope='mmengine', randomness=dict(seed=0))
    runner.train()


@pytest.mark.parametrize('epoch_based', [False, True])
def test_curves_are_the_logged_values(epoch_based, tmp_path, capsys):
    run_toy_training(tmp_path / 'work', epoch_based)
    logged = [json.loads(line) for line in analyze_logs.scalars_file(tmp_path / 'work').read_text().splitlines()]
    train = [r for r in logged if 'lr' in r]
    val = [r for r in logged if 'mse' in r]
    assert len(train) == 6 and len(val) == 2
    assert train[-1]['loss'] < train[0]['loss'] and train[-1]['lr'] > train[0]['lr']  # it trained
    out = tmp_path / 'curves.png'
    assert analyze_logs.main([str(tmp_path / 'work'), '--out', str(out)]) == 0
    assert out.stat().st_size > 10_000 and out.read_bytes()[:4] == b'\x89PNG'
    drawn = analyze_logs.plot_logs({'work': analyze_logs.read_scalars(analyze_logs.scalars_file(tmp_path / 'work'))},
                                   tmp_path / 'again.png')
    assert drawn['loss']['loss'] == ([r['step'] for r in train], [r['loss'] for r in train])
    assert drawn['lr']['lr'] == ([r['step'] for r in train], [r['lr'] for r in train])
    # Validated after iterations 3 and 6; mmengine logs those as epochs 1 and 2, or 0 in an iteration-based loop.
    assert [r['step'] for r in val] == ([1, 2] if epoch_based else [0, 0])
    assert drawn['metric']['mse'] == ([3, 6], [r['mse'] for r in val])
    printed = capsys.readouterr().out
    assert f"mse: {val[0]['mse']:.4g} at iteration 3 -> {val[-1]['mse']:.4g} at iteration 6" in printed


def test_unknown_metric_and_missing_log_fail_in_one_line(tmp_path, capsys):
    assert analyze_logs.main([str(tmp_path), '--out', str(tmp_path / 'x.png')]) == 1
    assert 'no mmengine log in' in capsys.readouterr().err
    log = tmp_path / 'scalars.json'
    log.write_text('{"lr": 0.1, "loss": 1.0, "step": 1}\n{"mse": 0.5, "step": 1}\n')
    assert analyze_logs.main([str(log), '--metric', 'coco/bbox_mAP', '--out', str(tmp_path / 'x.png')]) == 1
    assert '--metric coco/bbox_mAP not in the validation log; it has: mse' in capsys.readouterr().err
    assert not (tmp_path / 'x.png').exists()

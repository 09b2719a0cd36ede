"""CvT backbone: architecture, Hugging Face / official checkpoint parity, training switches,
errors."""
import re

import pytest
import torch
from transformers import CvtConfig, CvtForImageClassification, CvtModel

from pvt_det.models import CheckpointError, build_classifier, load_pretrained
from pvt_det.models.backbones.cvt import CvT, QuickGELU
from pvt_det.models.conversion import convert_checkpoint_file
from pvt_det.models.classifiers import CvTClassifier

TINY = dict(embed_dims=[16, 32, 48], num_heads=[1, 2, 3], depths=[1, 2, 3])
# Hugging Face indexes its per-block drop-path list by stage number: it needs depths >= (1, 2, 3).
TINY_HF = dict(embed_dim=TINY['embed_dims'], num_heads=TINY['num_heads'], depth=TINY['depths'])
GELU = dict(type='GELU')  # Hugging Face's activation; the official one (our default) is QuickGELU


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def randomised_hf(config_kwargs: dict, num_labels: int = 7,
                  seed: int = 0) -> CvtForImageClassification:
    """An HF CvT classifier, every parameter and BatchNorm statistic perturbed, in eval mode."""
    torch.manual_seed(seed)
    model = CvtForImageClassification(CvtConfig(num_labels=num_labels, **config_kwargs))
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.1)
        for name, buffer in model.named_buffers():
            if name.endswith('running_mean'):
                buffer.copy_(torch.randn_like(buffer) * 0.2)
            elif name.endswith('running_var'):
                buffer.copy_(torch.rand_like(buffer) + 0.5)
    return model.eval()


def to_official_layout(classifier_state: dict) -> dict:
    """pvt_det classifier keys -> the microsoft/CvT release layout (stage0..., norm, head)."""
    return {re.sub(r'^backbone\.stages\.(\d)\.', r'stage\1.', key): value
            for key, value in classifier_state.items()}


@pytest.fixture(scope='module')
def tiny_hf(tmp_path_factory):
    hf = randomised_hf(TINY_HF)
    directory = tmp_path_factory.mktemp('hf_cvt_tiny')
    hf.save_pretrained(directory)
    return hf, directory / 'model.safetensors'


# ------------------------------------------------------------------------------ architecture
def test_classifier_parameter_counts_match_the_paper():
    def millions(name):
        with torch.device('meta'):  # count without allocating or initialising (W24 has 277M)
            return sum(p.numel() for p in build_classifier(name).parameters()) / 1e6
    assert round(millions('cvt_13'), 1) == 20.0
    assert round(millions('cvt_21'), 1) == 31.6
    assert round(millions('cvt_w24')) == 277


def test_cvt13_stage_shapes_and_strides():
    model = CvT('13').eval()
    with torch.no_grad():
        square = model(torch.randn(1, 3, 224, 224))
        assert [tuple(f.shape) for f in square] == [
            (1, 64, 56, 56), (1, 192, 28, 28), (1, 384, 14, 14)]
        # Not a multiple of the total stride: every stage rounds up, like the convs it is made of.
        odd = model(torch.randn(1, 3, 200, 328))
    assert [tuple(f.shape) for f in odd] == [(1, 64, 50, 82), (1, 192, 25, 41), (1, 384, 13, 21)]


def test_out_indices_select_and_order_stages():
    model = CvT(TINY, out_indices=(2, 0)).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 61, 45))
    assert [f.shape[1] for f in outs] == [48, 16]
    assert CvT(TINY, out_indices=-1).out_indices == (2,)


def test_widths_and_depths_of_named_archs():
    for arch, dims, heads, depths in (('13', [64, 192, 384], [1, 3, 6], [1, 2, 10]),
                                      ('21', [64, 192, 384], [1, 3, 6], [1, 4, 16]),
                                      ('w24', [192, 768, 1024], [3, 12, 16], [2, 2, 20])):
        with torch.device('meta'):
            model = CvT(arch)
        assert model.embed_dims == dims
        assert [len(stage.blocks) for stage in model.stages] == depths
        assert [stage.blocks[0].attn.num_heads for stage in model.stages] == heads
        # The cls token lives in the last stage only.
        assert [stage.cls_token is not None for stage in model.stages] == [False, False, True]


def test_attention_is_scaled_by_the_full_width_and_kv_strided():
    model = CvT(TINY)
    attn = model.stages[1].blocks[0].attn
    # Not head_dim ** -0.5: the official checkpoints were trained with the full width.
    assert attn.scale == 32 ** -0.5
    assert attn.conv_proj_q.conv.stride == (1, 1) and attn.conv_proj_k.conv.stride == (2, 2)
    assert attn.conv_proj_v.conv.groups == 32  # depthwise


def test_stochastic_depth_ramps_over_all_blocks():
    model = CvT(TINY, drop_path_rate=0.3)
    rates = [getattr(block.drop_path, 'drop_prob', 0.0)
             for stage in model.stages for block in stage.blocks]
    assert rates == pytest.approx(torch.linspace(0, 0.3, 6).tolist())


def test_quick_gelu_is_the_default_activation():
    act = CvT(TINY).stages[0].blocks[0].mlp.act
    assert isinstance(act, QuickGELU)
    x = torch.linspace(-4, 4, 9)
    assert torch.allclose(act(x), x * torch.sigmoid(1.702 * x))
    assert isinstance(CvT(TINY, act_cfg=GELU).stages[0].blocks[0].mlp.act, torch.nn.GELU)


def test_registered_in_mmdet_and_mmseg():
    from mmdet.registry import MODELS as DET
    from mmseg.registry import MODELS as SEG
    for registry in (DET, SEG):
        model = registry.build(dict(type='CvT', arch=TINY, out_indices=(1, 2)))
        assert isinstance(model, CvT) and model.out_indices == (1, 2)


# ------------------------------------------------------------------------- checkpoint parity
def tiny_classifier(**kwargs) -> CvTClassifier:
    return CvTClassifier(CvT(TINY, act_cfg=GELU, **kwargs), num_classes=7)


def assert_matches_hf(hf, backbone, classifier, x):
    with torch.no_grad():
        reference = hf(x, output_hidden_states=True)
        maps = backbone(x)
        logits = classifier(x)
    assert len(maps) == 3
    for ours, theirs in zip(maps, reference.hidden_states):
        assert ours.shape == theirs.shape
        assert rel_diff(ours, theirs) < 1e-4
    assert logits.shape == reference.logits.shape
    assert rel_diff(logits, reference.logits) < 1e-4


def test_hugging_face_checkpoint_gives_the_same_maps_and_logits(tiny_hf):
    hf, path = tiny_hf
    backbone = CvT(TINY, act_cfg=GELU, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    backbone.init_weights()
    classifier = tiny_classifier()
    report = load_pretrained(classifier, str(path), 'cvt')
    assert report.layout == 'huggingface' and not report.dropped_keys
    assert_matches_hf(hf, backbone.eval(), classifier.eval(), torch.randn(2, 3, 70, 93))


def test_official_activation_differs_from_hugging_face(tiny_hf):
    """The parity above is not vacuous: with the official QuickGELU the same weights give other
    maps."""
    hf, path = tiny_hf
    backbone = CvT(TINY, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    backbone.init_weights()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        reference = hf(x, output_hidden_states=True).hidden_states[-1]
        assert rel_diff(backbone.eval()(x)[-1], reference) > 1e-3


def test_hugging_face_cvt_model_checkpoint_loads_into_the_backbone(tiny_hf, tmp_path):
    hf, _ = tiny_hf
    hf.cvt.save_pretrained(tmp_path)  # a bare CvtModel: encoder.* keys, no classifier
    saved_keys = CvtModel.from_pretrained(tmp_path).state_dict()
    assert any(key.startswith('encoder.stages.') for key in saved_keys)
    path = str(tmp_path / 'model.safetensors')
    backbone = CvT(TINY, act_cfg=GELU, init_cfg=dict(type='Pretrained', checkpoint=path))
    backbone.init_weights()
    x = torch.randn(1, 3, 48, 80)
    with torch.no_grad():
        for ours, theirs in zip(backbone.eval()(x), hf(x, output_hidden_states=True).hidden_states):
            assert rel_diff(ours, theirs) < 1e-4
    with pytest.raises(CheckpointError,
                       match=r'missing keys \[head.bias, head.weight, norm.bias, norm.weight\]'):
        load_pretrained(tiny_classifier(), path, 'cvt')


def test_official_layout_and_own_layout_load_and_match(tiny_hf, tmp_path):
    hf, path = tiny_hf
    converted = tiny_classifier()
    load_pretrained(converted, str(path), 'cvt')
    official = to_official_layout(converted.state_dict())
    assert 'stage2.cls_token' in official
    assert 'stage0.blocks.0.attn.conv_proj_q.bn.running_var' in official
    assert 'stage1.blocks.1.mlp.fc2.weight' in official and 'head.weight' in official
    torch.save(official, tmp_path / 'CvT-tiny.pth')
    torch.save({'state_dict': converted.backbone.state_dict()}, tmp_path / 'own_backbone.pth')

    classifier = tiny_classifier()
    assert load_pretrained(classifier, str(tmp_path / 'CvT-tiny.pth'), 'cvt').layout == 'official'
    backbone = CvT(TINY, act_cfg=GELU,
                   init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'CvT-tiny.pth')))
    backbone.init_weights()
    assert_matches_hf(hf, backbone.eval(), classifier.eval(), torch.randn(2, 3, 57, 66))

    # A detector trained with pvt_det: backbone.* next to neck.* / bbox_head.*, with or without
    # prefix.
    detector = {'backbone.' + k: v for k, v in converted.backbone.state_dict().items()}
    detector.update({'neck.lateral_convs.0.conv.weight': torch.zeros(8, 16, 1, 1),
                     'bbox_head.retina_cls.bias': torch.zeros(9)})
    torch.save({'meta': {}, 'state_dict': detector}, tmp_path / 'detector.pth')
    x = torch.randn(1, 3, 64, 64)
    for checkpoint, prefix in (('own_backbone.pth', None), ('detector.pth', None),
                               ('detector.pth', 'backbone.')):
        own = CvT(TINY, act_cfg=GELU, init_cfg=dict(
            type='Pretrained', checkpoint=str(tmp_path / checkpoint), prefix=prefix))
        own.init_weights()
        with torch.no_grad():
            for a, b in zip(own.eval()(x), backbone(x)):
                assert torch.equal(a, b)


def test_cvt13_hugging_face_logits_match(tmp_path):
    """The real CvT-13 architecture (HF's default config) end to end through build_classifier."""
    hf = randomised_hf({}, num_labels=10, seed=1)
    hf.save_pretrained(tmp_path)
    ours = build_classifier('cvt_13', num_classes=10, act_cfg=GELU,
                            checkpoint=str(tmp_path / 'model.safetensors')).eval()
    # tools/convert_weights.py's converter recognises the arch and writes our layout, which loads.
    report = convert_checkpoint_file(tmp_path / 'model.safetensors', tmp_path / 'cvt_13.pth')
    assert report.layout == 'cvt/huggingface'
    rewritten = build_classifier('cvt_13', num_classes=10, checkpoint=str(tmp_path / 'cvt_13.pth'),
                                 act_cfg=GELU).eval()
    x = torch.randn(2, 3, 64, 72)
    with torch.no_grad():
        reference = hf(x, output_hidden_states=True)
        assert rel_diff(ours(x), reference.logits) < 1e-4
        assert torch.equal(rewritten(x), ours(x))
        for mine, theirs in zip(ours.backbone(x), reference.hidden_states):
            assert rel_diff(mine, theirs) < 1e-4


# ------------------------------------------------------------------------- training switches
def batchnorms(module):
    return [m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)]


def test_frozen_stages_keep_weights_and_statistics():
    model = CvT(TINY, frozen_stages=1, drop_path_rate=0.0)
    model.train()
    frozen = {k: v.clone() for k, v in model.stages[:2].state_dict().items()}
    trained = {k: v.clone() for k, v in model.stages[2].state_dict().items()}
    assert all(not p.requires_grad for p in model.stages[:2].parameters())
    assert all(p.requires_grad for p in model.stages[2].parameters())
    assert not any(m.training for stage in model.stages[:2] for m in stage.modules())
    assert model.stages[2].training
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    sum(f.square().mean() for f in model(torch.randn(2, 3, 64, 64))).backward()
    optimizer.step()
    assert all(torch.equal(v, model.stages[:2].state_dict()[k]) for k, v in frozen.items())
    changed = [k for k, v in model.stages[2].state_dict().items() if not torch.equal(v, trained[k])]
    assert any(k.endswith('proj_q.weight') for k in changed)
    assert any(k.endswith('running_mean') for k in changed)


def test_norm_eval_keeps_batchnorm_statistics():
    for norm_eval in (True, False):
        model = CvT(TINY, norm_eval=norm_eval).train()
        before = [bn.running_mean.clone() for bn in batchnorms(model)]
        model(torch.randn(2, 3, 48, 48))
        unchanged = [torch.equal(a, bn.running_mean) for a, bn in zip(before, batchnorms(model))]
        assert all(unchanged) if norm_eval else not any(unchanged)
        assert all(bn.training != norm_eval for bn in batchnorms(model))
        assert all(m.training for m in model.modules() if isinstance(m, torch.nn.LayerNorm))


def test_with_cp_gives_the_same_gradients_and_statistics():
    torch.manual_seed(0)
    plain = CvT(TINY, drop_path_rate=0.0).train()
    checkpointed = CvT(TINY, drop_path_rate=0.0, with_cp=True).train()
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 56, 72)
    for model in (plain, checkpointed):
        sum((f * torch.linspace(-1, 1, f.shape[-1])).sum() for f in model(x)).backward()
    for (name, a), b in zip(plain.named_parameters(), checkpointed.parameters()):
        assert torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-6), name
    # Recomputation for backward must not update the BatchNorm running statistics a second time.
    for a, b in zip(batchnorms(plain), batchnorms(checkpointed)):
        assert torch.allclose(a.running_var, b.running_var)
        assert a.num_batches_tracked == b.num_batches_tracked


# ------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize('kwargs, message', [
    (dict(arch='14'), r"unknown CvT arch '14'; valid archs: \['13', '21', 'w24'\]"),
    (dict(arch=dict(embed_dims=[8, 16, 24], depths=[1, 1, 1])), r"missing \['num_heads'\]"),
    (dict(arch=dict(embed_dims=[8, 16], num_heads=[1, 2], depths=[1, 1])), 'one entry per stage'),
    (dict(out_indices=(0, 3)), r'out_indices=\(0, 3\) is out of range.*0\.\.2'),
    (dict(out_indices=()), 'out of range'),
    (dict(frozen_stages=3), r'frozen_stages=3 is out of range: use -1 .* up to 2'),
])
def test_bad_construction_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CvT(**kwargs)


def test_bad_inputs():
    model = CvT(TINY).eval()
    with pytest.raises(ValueError,
                       match=r'expects an \(N, C, H, W\) image tensor, got \(3, 64, 64\)'):
        model(torch.randn(3, 64, 64))
    with pytest.raises(ValueError,
                       match='in_channels=3 but the input has 1 channels.*pass in_channels=1'):
        model(torch.randn(1, 1, 64, 64))
    with pytest.raises(ValueError, match='2x40 pixels is too small.*at least 3'):
        model(torch.randn(1, 3, 2, 40))
    # The minimum works.
    assert [f.shape[-2:] for f in model(torch.randn(1, 3, 3, 3))] == [(1, 1)] * 3


def test_bad_checkpoints(tiny_hf, tmp_path):
    _, path = tiny_hf
    with pytest.raises(CheckpointError, match=r'does not fit CvT\(arch=.13.\).*shape mismatches'):
        load_pretrained(CvT('13'), str(path), 'cvt')
    missing = tmp_path / 'nowhere.pth'
    with pytest.raises(FileNotFoundError, match=str(missing)):
        CvT(TINY, init_cfg=dict(type='Pretrained', checkpoint=str(missing))).init_weights()
    corrupt = tmp_path / 'corrupt.pth'
    corrupt.write_bytes(b'not a checkpoint')
    with pytest.raises(CheckpointError, match='cannot read checkpoint .*corrupt.pth'):
        CvT(TINY, init_cfg=dict(type='Pretrained', checkpoint=str(corrupt))).init_weights()
    torch.save({'patch_embed1.proj.weight': torch.zeros(1)}, tmp_path / 'other.pth')
    with pytest.raises(CheckpointError, match='is not a cvt checkpoint'):
        load_pretrained(CvT(TINY), str(tmp_path / 'other.pth'), 'cvt')
    # A checkpoint that lacks some backbone keys is never a silent partial load.
    partial = {k: v for k, v in tiny_classifier().state_dict().items()
               if 'stages.2.blocks.2.' not in k}
    with pytest.raises(CheckpointError, match=r'missing keys \[stages\.2\.blocks\.2\.'):
        load_pretrained(CvT(TINY), partial, 'cvt')

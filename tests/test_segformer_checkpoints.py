"""Whole SegFormer checkpoints evaluate exactly through tools/test.py configs/segformer_mit_b0_ade20k.py:

* mmseg's own SegFormer-mit_b0 (``backbone.layers.*`` + SegformerHead): the predictions of pvt_det's PVTv2
  running it equal those of mmseg's model (MixVisionTransformer) on the same file;
* transformers' ``SegformerForSemanticSegmentation`` file (``segformer.encoder.*`` + its all-MLP decode head), with
  ``model.decode_head.type='SegformerMLPHead'``: the predictions equal transformers' own;
* NVlabs/SegFormer's trained segmentor layout (``backbone.`` + official keys, ``decode_head.linear_c*`` ...): the
  logits equal transformers' for the same weights;
* a file whose head is the other kind is refused with the one config change to make.

Random weights, MiT-b0 at 64 px, the generated ADE20K layout.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

import pvt_det  # noqa: F401
from pvt_det.models.checkpoint import CheckpointError
from helpers import SEG_64PX_PIPELINES, SEG_64PX_PREPROCESSOR

transformers = pytest.importorskip('transformers')

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / 'configs' / 'segformer_mit_b0_ade20k.py'
NUM_CLASSES = 150
MEAN, STD = np.array([123.675, 116.28, 103.53]), np.array([58.395, 57.12, 57.375])

USER_CONFIG = '''\
_base_ = {base!r}
data_root = {data_root!r}
''' + SEG_64PX_PREPROCESSOR + SEG_64PX_PIPELINES + '''\
train_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(data_root=data_root))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
model = dict(data_preprocessor=data_preprocessor, backbone=dict(init_cfg=None))
'''
# mmseg's own model: its MixVisionTransformer, as mmseg's segformer_mit-b0 config builds it
MMSEG_BACKBONE = '''
model = dict(backbone=dict(_delete_=True, type='MixVisionTransformer', in_channels=3, embed_dims=32, num_stages=4,
                           num_layers=[2, 2, 2, 2], num_heads=[1, 2, 5, 8], patch_sizes=[7, 3, 3, 3],
                           sr_ratios=[8, 4, 2, 1], out_indices=(0, 1, 2, 3), mlp_ratio=4, qkv_bias=True,
                           drop_rate=0.0, attn_drop_rate=0.0, drop_path_rate=0.1))
'''
MLP_HEAD = "\nmodel = dict(decode_head=dict(type='SegformerMLPHead'))\n"


def randomise(model: nn.Module, seed: int) -> nn.Module:
    """Every parameter moved from its initial value, BatchNorm statistics too."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.1 * torch.randn(param.shape, generator=generator))
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_mean.copy_(0.1 * torch.randn(module.running_mean.shape, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(module.running_var.shape, generator=generator))
    return model.eval()


@pytest.fixture(scope='module')
def ade(tmp_path_factory) -> Path:
    from pvt_det.datasets.synthetic import make_ade20k_dataset
    root = tmp_path_factory.mktemp('ade')
    make_ade20k_dataset(root, num_train=1, num_val=2, image_size=(64, 64), seed=4)
    return root


def write_config(path: Path, ade: Path, extra: str = '') -> Path:
    path.write_text(USER_CONFIG.format(base=str(CONFIG), data_root=str(ade)) + extra)
    return path


def build(config: Path) -> nn.Module:
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    cfg = Config.fromfile(str(config))
    init_default_scope('mmseg')
    return MODELS.build(cfg.model)


def predictions(config: Path, checkpoint: Path, work_dir: Path) -> dict[str, np.ndarray]:
    """The label maps tools/test.py writes (``--out``), by image name."""
    from pvt_det.tools.test import main
    out = work_dir / 'pred'
    assert main([str(config), str(checkpoint), '--work-dir', str(work_dir), '--out', str(out)]) in (0, None)
    maps = {p.stem: cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(out.rglob('*.png'))}
    assert maps, 'nothing was predicted'
    return maps


def hf_segmentor(seed: int = 0):
    config = transformers.SegformerConfig(hidden_sizes=[32, 64, 160, 256], depths=[2, 2, 2, 2],
                                          num_attention_heads=[1, 2, 5, 8], sr_ratios=[8, 4, 2, 1],
                                          decoder_hidden_size=256, num_labels=NUM_CLASSES)
    return randomise(transformers.SegformerForSemanticSegmentation(config), seed)


def hf_hub_state_dict(model, folder: Path) -> dict:
    """The hub's spelling of the weights (what ``save_pretrained`` writes, and the hub's pytorch_model.bin)."""
    from safetensors.torch import load_file
    model.save_pretrained(folder)
    return load_file(str(folder / 'model.safetensors'))


def hf_logits(model, image_path: Path) -> torch.Tensor:
    """transformers' logits for one image as mmseg's test pipeline feeds it (RGB, mean/std), at input size."""
    image = cv2.imread(str(image_path))[..., ::-1].astype(np.float64)
    x = torch.from_numpy(((image - MEAN) / STD).astype(np.float32)).permute(2, 0, 1)[None]
    with torch.no_grad():
        logits = model(pixel_values=x).logits
    return nn.functional.interpolate(logits, size=x.shape[-2:], mode='bilinear', align_corners=False)


# ----------------------------------------------------------------------------------------------------- tests
@pytest.mark.slow
def test_mmseg_segformer_checkpoint_predicts_what_mmseg_predicts(ade, tmp_path):
    reference_config = write_config(tmp_path / 'mmseg_segformer.py', ade, MMSEG_BACKBONE)
    checkpoint = tmp_path / 'segformer_mit_b0_mmseg.pth'
    torch.save({'state_dict': randomise(build(reference_config), seed=1).state_dict(), 'meta': {}}, checkpoint)
    ours_config = write_config(tmp_path / 'segformer.py', ade)
    theirs = predictions(reference_config, checkpoint, tmp_path / 'mmseg')
    ours = predictions(ours_config, checkpoint, tmp_path / 'ours')
    assert ours.keys() == theirs.keys()
    assert all(np.array_equal(ours[name], theirs[name]) for name in ours)
    assert len({int(v) for m in ours.values() for v in np.unique(m)}) > 1  # a random head predicts many classes


@pytest.mark.slow
def test_hugging_face_segformer_file_predicts_what_transformers_predicts(ade, tmp_path):
    model = hf_segmentor(seed=2)
    checkpoint = tmp_path / 'pytorch_model.bin'
    torch.save(hf_hub_state_dict(model, tmp_path / 'hub'), checkpoint)
    config = write_config(tmp_path / 'segformer_hf.py', ade, MLP_HEAD)
    ours = predictions(config, checkpoint, tmp_path / 'ours')
    for image_path in sorted((ade / 'images' / 'validation').glob('*.jpg')):
        expected = hf_logits(model, image_path)[0].argmax(0).numpy() + 1  # ADE20K's PNGs: label + 1
        assert np.array_equal(ours[image_path.stem], expected), image_path.name


def nvlabs_layout(hub: dict) -> dict:
    """The hub's SegFormer weights in NVlabs/SegFormer's trained-segmentor layout (mmseg 0.x: ``backbone.`` +
    the official module's keys, SegFormerHead's ``linear_c1..4``, ``linear_fuse``, ``linear_pred`` and the
    unused ``conv_seg`` every mmseg 0.x head has). Written here, independently of the converters."""
    out = {}
    names = (('layer_norm_1.', 'norm1.'), ('attention.self.query.', 'attn.q.'), ('attention.self.sr.', 'attn.sr.'),
             ('attention.self.layer_norm.', 'attn.norm.'), ('attention.output.dense.', 'attn.proj.'),
             ('layer_norm_2.', 'norm2.'), ('mlp.dense1.', 'mlp.fc1.'), ('mlp.dense2.', 'mlp.fc2.'),
             ('mlp.dwconv.dwconv.', 'mlp.dwconv.dwconv.'))
    for key, value in hub.items():
        parts = key.split('.')
        if key.startswith('segformer.encoder.patch_embeddings.'):
            rest = '.'.join(parts[4:]).replace('layer_norm.', 'norm.')
            out[f'backbone.patch_embed{int(parts[3]) + 1}.{rest}'] = value
        elif key.startswith('segformer.encoder.layer_norm.'):
            out[f'backbone.norm{int(parts[3]) + 1}.{parts[4]}'] = value
        elif key.startswith('segformer.encoder.block.'):
            target, rest = f'backbone.block{int(parts[3]) + 1}.{parts[4]}.', '.'.join(parts[5:])
            if rest.startswith('attention.self.key.'):
                out[target + 'attn.kv.' + parts[-1]] = torch.cat(
                    [value, hub[key.replace('attention.self.key.', 'attention.self.value.')]])
            elif not rest.startswith('attention.self.value.'):
                old, new = next((o, n) for o, n in names if rest.startswith(o))
                out[target + new + rest[len(old):]] = value
        elif key.startswith('decode_head.linear_c.'):
            out[f'decode_head.linear_c{int(parts[2]) + 1}.proj.{parts[-1]}'] = value
        elif key == 'decode_head.linear_fuse.weight':
            out['decode_head.linear_fuse.conv.weight'] = value
        elif key.startswith('decode_head.batch_norm.'):
            out['decode_head.linear_fuse.bn.' + parts[-1]] = value
        elif key.startswith('decode_head.classifier.'):
            out['decode_head.linear_pred.' + parts[-1]] = value
            out['decode_head.conv_seg.' + parts[-1]] = torch.zeros_like(value)  # built, never used, by mmseg 0.x
        else:
            raise AssertionError(key)
    return out


def test_nvlabs_segmentor_file_computes_what_its_head_computes(ade, tmp_path):
    from mmengine.runner import load_checkpoint
    model = hf_segmentor(seed=3)
    checkpoint = tmp_path / 'segformer.b0.512x512.ade.160k.pth'
    torch.save({'state_dict': nvlabs_layout(hf_hub_state_dict(model, tmp_path / 'hub')), 'meta': {}}, checkpoint)
    ours = build(write_config(tmp_path / 'segformer_nvlabs.py', ade, MLP_HEAD)).eval()
    load_checkpoint(ours, str(checkpoint), strict=True)  # mmengine's plain loader: the modules convert
    image_path = next((ade / 'images' / 'validation').glob('*.jpg'))
    image = cv2.imread(str(image_path))[..., ::-1].astype(np.float64)
    x = torch.from_numpy(((image - MEAN) / STD).astype(np.float32)).permute(2, 0, 1)[None]
    with torch.no_grad():
        logits = ours.encode_decode(x, [dict(img_shape=(64, 64))])
    expected = hf_logits(model, image_path)
    assert ((logits - expected).abs().max() / expected.abs().max()).item() < 1e-4
    assert ours.backbone.norm_eps == (1e-6, 1e-5)  # NVlabs' code: the official eps


def test_a_file_with_the_other_head_names_the_config_change(ade, tmp_path):
    from pvt_det.models.model_checkpoint import fit_state_dict
    mmseg_head = build(write_config(tmp_path / 'segformer.py', ade))
    mlp_head = build(write_config(tmp_path / 'segformer_mlp.py', ade, MLP_HEAD))
    hub = hf_hub_state_dict(hf_segmentor(seed=4), tmp_path / 'hub')
    with pytest.raises(CheckpointError, match="model.decode_head.type='SegformerMLPHead'"):
        fit_state_dict(mmseg_head, hub)
    with pytest.raises(CheckpointError, match="model.decode_head.type='SegformerHead'"):
        fit_state_dict(mlp_head, mmseg_head.state_dict())
    # and the matching pairs fit exactly
    assert fit_state_dict(mlp_head, dict(hub)).layouts == {'backbone.': 'huggingface_segformer'}

"""Checkpoint machinery: reading, unwrapping, layout detection, strict loading, clear errors, URL fallback,
init_cfg through the mm registries, and the tools/convert_weights.py CLI."""
from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch

import pvt_det  # noqa: F401
from pvt_det.models import build_classifier
from pvt_det.models.backbones import PVT, PVTv2
from pvt_det.models.checkpoint import CheckpointError, load_pretrained
from helpers import load_tool

TINY = dict(embed_dims=[16, 32, 48, 64],
            num_heads=[1, 2, 3, 4],
            depths=[1, 2, 1, 1],
            mlp_ratios=[8, 8, 4, 4],
            sr_ratios=[8, 4, 2, 1])
REPO = Path(__file__).resolve().parents[1]


def pretrained(path) -> dict:
    return dict(type='Pretrained', checkpoint=str(path))


def random_backbone(cls=PVTv2, arch=TINY, seed=0, **kwargs):
    torch.manual_seed(seed)
    return cls(arch, **kwargs)


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_missing_file_names_the_path(tmp_path):
    backbone = PVTv2(TINY, init_cfg=pretrained(tmp_path / 'nope.pth'))
    with pytest.raises(FileNotFoundError, match=r'nope\.pth'):
        backbone.init_weights()


@pytest.mark.parametrize('name', ['broken.pth', 'broken.safetensors'])
def test_corrupt_file_names_the_path(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b'\x80\x02this is not a checkpoint' * 10)
    with pytest.raises(CheckpointError, match=rf'cannot read checkpoint .*{name}'):
        load_pretrained(PVTv2(TINY), path, 'pvt_v2')


def test_truncated_file_is_reported(tmp_path):
    path = tmp_path / 'cut.pth'
    torch.save(random_backbone().state_dict(), path)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match=r'cut\.pth.*download it again'):
        load_pretrained(PVTv2(TINY), path, 'pvt_v2')


def test_checkpoint_of_another_arch_names_the_mismatches(tmp_path):
    path = tmp_path / 'other.pth'
    torch.save(
        random_backbone(
            arch=dict(TINY, depths=[1, 1, 1, 1], embed_dims=[16, 32, 48, 72])).state_dict(), path)
    with pytest.raises(CheckpointError) as error:
        load_pretrained(PVTv2(TINY), path, 'pvt_v2')
    message = str(error.value)
    assert 'other.pth' in message and "arch='custom'" in message
    assert 'missing keys [stages.1.blocks.1.' in message
    assert 'shape mismatches [stages.3.blocks.0.attn.kv.bias: checkpoint (144,) vs model (128,)' in message


def test_checkpoint_of_another_family_says_which(tmp_path):
    path = tmp_path / 'v1.pth'
    torch.save(random_backbone(PVT).state_dict(), path)
    with pytest.raises(CheckpointError,
                       match=r'not a pvt_v2 checkpoint \(it looks like a pvt/pvt_det checkpoint'):
        load_pretrained(PVTv2(TINY), path, 'pvt_v2')
    torch.save({'foo.weight': torch.zeros(1)}, path)
    with pytest.raises(CheckpointError,
                       match=r"expected one of the pvt_v2 layouts.*first keys are \[foo.weight\]"):
        load_pretrained(PVTv2(TINY), path, 'pvt_v2')


def test_v1_position_grid_mismatch_says_which_pretrain_img_size(tmp_path):
    path = tmp_path / 'v1.pth'
    torch.save(random_backbone(PVT, pretrain_img_size=64).state_dict(), path)
    with pytest.raises(
            CheckpointError,
            match=r'stage 0 position embedding has 256 tokens .* 24x24 grid .*pretrain_img_size=64'
    ):
        load_pretrained(PVT(TINY, pretrain_img_size=96), path, 'pvt')


def test_wrappers_and_prefixes_are_unwrapped(tmp_path):
    source = random_backbone()
    path = tmp_path / 'wrapped.pth'
    torch.save(
        {
            'meta': {
                'epoch': 3
            },
            'model': {
                'module.' + k: v
                for k, v in source.state_dict().items()
            }
        }, path)
    target = PVTv2(TINY, init_cfg=pretrained(path))
    target.init_weights()
    assert_same_weights(source, target)


def test_classifier_keys_are_dropped_on_purpose_and_reported(tmp_path):
    classifier = build_classifier('pvt_tiny', num_classes=3, arch=TINY)
    path = tmp_path / 'cls.pth'
    torch.save({'state_dict': classifier.state_dict()}, path)
    backbone = PVT(TINY)
    report = load_pretrained(backbone, path, 'pvt')
    assert report.layout == 'pvt_det'
    assert report.dropped_keys == [
        'cls_pos_embed', 'cls_token', 'head.bias', 'head.weight', 'norm.bias', 'norm.weight'
    ]
    assert_same_weights(classifier.backbone, backbone)
    # a classifier, on the other hand, needs its head: a backbone-only file is refused, naming the keys
    torch.save(backbone.state_dict(), path)
    with pytest.raises(CheckpointError,
                       match=r'missing keys \[cls_pos_embed, cls_token, head.bias'):
        build_classifier('pvt_tiny', num_classes=3, arch=TINY, checkpoint=path)


def test_detector_checkpoint_backbone_loads_via_init_cfg_prefix_or_detection(tmp_path):
    source = random_backbone()
    state = {'backbone.' + k: v for k, v in source.state_dict().items()}
    state['neck.lateral_convs.0.conv.weight'] = torch.zeros(4, 4, 1, 1)
    path = tmp_path / 'retinanet.pth'
    torch.save({'state_dict': state, 'meta': {}}, path)
    for init_cfg in (pretrained(path), dict(pretrained(path), prefix='backbone.')):
        target = PVTv2(TINY, init_cfg=init_cfg)
        target.init_weights()
        assert_same_weights(source, target)
    report = load_pretrained(PVTv2(TINY), path, 'pvt_v2')
    assert report.dropped_keys == ['neck.lateral_convs.0.conv.weight']


def test_init_cfg_through_mmdet_and_mmseg_registries(tmp_path):
    from mmdet.registry import MODELS as DET
    from mmseg.registry import MODELS as SEG
    source = random_backbone()
    path = tmp_path / 'ours.safetensors'
    from safetensors.torch import save_file
    save_file(source.state_dict(), str(path))
    for registry in (DET, SEG):
        backbone = registry.build(dict(type='PVTv2', arch=TINY, init_cfg=pretrained(path)))
        backbone.init_weights()
        assert_same_weights(source, backbone)
    with pytest.raises(CheckpointError, match=r'needs checkpoint=PATH_OR_URL.*init_cfg=None'):
        PVTv2(TINY, init_cfg=dict(type='Pretrained')).init_weights()


def test_url_download_failure_says_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))

    def offline(*args, **kwargs):
        raise urllib.error.URLError('[Errno -3] Temporary failure in name resolution')

    monkeypatch.setattr(torch.hub, 'download_url_to_file', offline)
    url = 'https://github.com/whai362/PVT/releases/download/v2/pvt_v2_b0.pth'
    backbone = PVTv2(TINY, init_cfg=pretrained(url))
    with pytest.raises(CheckpointError) as error:
        backbone.init_weights()
    message = str(error.value)
    assert 'could not download ' + url in message and 'name resolution' in message
    assert 'model.backbone.init_cfg.checkpoint=checkpoints/pvt_v2_b0.pth' in message
    assert 'model.backbone.init_cfg=None' in message
    # put the file where the message says: it is used without downloading
    cached = tmp_path / 'torch_home' / 'hub' / 'checkpoints' / 'pvt_v2_b0.pth'
    assert str(cached) in message
    source = random_backbone()
    torch.save(source.state_dict(), cached)
    backbone.init_weights()
    assert_same_weights(source, backbone)


# ------------------------------------------------------------------------------------------ convert_weights
def convert_weights_main():
    return load_tool('convert_weights').main


def test_convert_weights_detects_layout_and_arch(tmp_path, capsys):
    transformers = pytest.importorskip('transformers')
    torch.manual_seed(0)
    hf = transformers.PvtV2ForImageClassification(
        transformers.PvtV2Config(num_labels=10)).eval()  # = b0
    hf.save_pretrained(tmp_path / 'hf')
    main = convert_weights_main()
    dst = tmp_path / 'out' / 'b0.pth'
    assert main([str(tmp_path / 'hf' / 'model.safetensors'), str(dst)]) == 0
    assert 'pvt_v2/huggingface layout' in capsys.readouterr().out
    saved = torch.load(dst, weights_only=True)
    assert saved['meta']['arch'] == 'pvt_v2_b0' and 'head.weight' in saved['state_dict']
    classifier = build_classifier('pvt_v2_b0', num_classes=10, checkpoint=dst).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = hf(x).logits
        assert ((classifier(x) - expected).abs().max() /
                expected.abs().max()) < 1e-4  # HF eps 1e-6 vs 1e-5
    # errors: one line on stderr, non-zero exit, nothing overwritten
    assert main([str(tmp_path / 'missing.pth'), str(tmp_path / 'x.pth')]) == 1
    assert main([str(tmp_path / 'hf' / 'model.safetensors'), str(dst)]) == 1
    assert main([
        str(tmp_path / 'hf' / 'model.safetensors'),
        str(tmp_path / 'y.pth'), '--arch', 'pvt_v2_b1'
    ]) == 1
    torch.save(random_backbone().state_dict(), tmp_path / 'custom.pth')
    assert main([str(tmp_path / 'custom.pth'), str(tmp_path / 'z.pth')]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 4 and all(line.startswith('convert_weights: error: ') for line in errors)
    assert 'missing.pth' in errors[0] and 'already exists' in errors[1]
    assert 'shape mismatches' in errors[2] and 'fits none of the known architectures' in errors[3]
    assert not (tmp_path / 'y.pth').exists() and not (tmp_path / 'z.pth').exists()


def test_downloads_of_same_named_files_do_not_share_a_cache_entry(monkeypatch, tmp_path):
    """Every Hugging Face model file is called pytorch_model.bin: the cache must tell them apart."""
    from pvt_det.models.checkpoint import resolve_checkpoint
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, 'download_url_to_file', lambda url, dst, progress: Path(dst).write_text(url))
    urls = ['https://huggingface.co/microsoft/cvt-13/resolve/main/pytorch_model.bin',
            'https://huggingface.co/microsoft/cvt-21/resolve/main/pytorch_model.bin']
    paths = [resolve_checkpoint(url) for url in urls]
    assert paths[0] != paths[1]
    assert [path.read_text() for path in paths] == urls
    github = resolve_checkpoint('https://github.com/whai362/PVT/releases/download/v2/pvt_small.pth')
    assert github.name == 'pvt_small.pth'  # the name torch.hub / mmengine caches use: an existing download is reused


# ------------------------------------------------------------------------ loading into a whole model
class TinyDetector(torch.nn.Module):
    def __init__(self, backbone: torch.nn.Module) -> None:
        super().__init__()
        self.backbone, self.neck = backbone, torch.nn.Linear(2, 2)


def test_backbone_converts_its_keys_when_a_whole_model_is_loaded():
    """model.load_state_dict with the backbone part in the official detection layout (v1: pos_embed4 with the unused
    cls row, no cls token): converted in the model, neck untouched, ours passes as it is."""
    source = TinyDetector(random_backbone(PVT, pretrain_img_size=64))
    ours = source.state_dict()
    official = {}
    for key, value in ours.items():
        stage = key.split('.')[2] if key.startswith('backbone.stages.') else None
        if stage is None:
            official[key] = value
            continue
        rest = key.split('.', 3)[3]
        s = int(stage) + 1
        if rest == 'pos_embed':
            official[f'backbone.pos_embed{s}'] = torch.cat([torch.ones(1, 1, value.shape[2]), value], 1) \
                if s == 4 else value
        else:
            kind, tail = rest.split('.', 1)
            official[f'backbone.{dict(patch_embed="patch_embed", blocks="block")[kind]}{s}.{tail}'] = value
    target = TinyDetector(PVT(TINY, pretrain_img_size=64))
    assert not target.load_state_dict(official, strict=True).missing_keys
    assert all(torch.equal(target.state_dict()[k], v) for k, v in ours.items())
    # another pretrain_img_size: one clear error (torch raises it even with strict=False, as for a shape)
    with pytest.raises(RuntimeError, match=r'backbone\.: .*stage 0 position embedding has 256 tokens.*'
                                           r'pretrain_img_size=64'):
        TinyDetector(PVT(TINY, pretrain_img_size=96)).load_state_dict(official, strict=False)
    # keys in no layout of ours keep torch's meaning: unexpected (and ours missing)
    result = TinyDetector(PVT(TINY)).load_state_dict({'backbone.conv1.weight': torch.zeros(1)}, strict=False)
    assert result.unexpected_keys == ['backbone.conv1.weight'] and 'backbone.stages.0.pos_embed' in \
        result.missing_keys

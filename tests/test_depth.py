"""GLPN depth estimation (issue 23, depth half): the head against transformers' GLPNForDepthEstimation, a
Hugging Face GLPN file through tools/test.py, the shipped configs, pre-flight, the demo and tools/infer.py."""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
import torch

from pvt_det.cli import ToolError

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'configs')
# A tiny GLPN (b0-like, one block per stage) in transformers' and in pvt_det's terms.
TINY_HF = dict(hidden_sizes=[16, 32, 48, 64], depths=[1, 1, 1, 1], num_attention_heads=[1, 1, 2, 2],
               mlp_ratios=[2, 2, 2, 2], sr_ratios=[8, 4, 2, 1], decoder_hidden_size=32, max_depth=10)
TINY_ARCH = dict(embed_dims=[16, 32, 48, 64], depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2],
                 mlp_ratios=[2, 2, 2, 2], sr_ratios=[8, 4, 2, 1])
IMAGE_SIZE = (64, 96)  # (height, width): a multiple of 32, as GLPN needs for an output of the input's size

TINY_CONFIG = '''_base_ = {base!r}
data_root = {data_root!r}
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthAnnotation', depth_rescale_factor=1e-3),
    dict(type='PackSegInputs')
]
model = dict(backbone=dict(arch=dict({arch!r}, _delete_=True), drop_path_rate=0.0, init_cfg=None),
             decode_head=dict(in_channels={widths!r}, channels=32))
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root))
test_dataloader = dict(num_workers=0, persistent_workers=False,
                       dataset=dict(data_root=data_root, pipeline=test_pipeline))
val_dataloader = test_dataloader
test_evaluator = dict(crop_type=None)
val_evaluator = test_evaluator
'''


@pytest.fixture(scope='module')
def depth_data(tmp_path_factory):
    from pvt_det.datasets.synthetic_depth import make_nyu_depth_dataset
    root = tmp_path_factory.mktemp('nyu')
    make_nyu_depth_dataset(root, num_train=4, num_test=3, image_size=IMAGE_SIZE, seed=1)
    return root


@pytest.fixture(scope='module')
def tiny_config(depth_data, tmp_path_factory):
    path = tmp_path_factory.mktemp('cfg') / 'glpn_tiny_nyu.py'
    path.write_text(TINY_CONFIG.format(base=os.path.join(CONFIGS, 'glpn_mit_b4_nyu.py'), data_root=str(depth_data),
                                       arch=TINY_ARCH, widths=TINY_ARCH['embed_dims']))
    return path


@pytest.fixture(scope='module')
def hub_glpn(tmp_path_factory):
    """A randomised transformers GLPNForDepthEstimation (BatchNorm statistics too) and its state dict on disk."""
    from transformers import GLPNConfig, GLPNForDepthEstimation
    torch.manual_seed(0)
    model = GLPNForDepthEstimation(GLPNConfig(**TINY_HF)).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.normal_(0.0, 0.2 if param.dim() > 1 else 0.1)
        for name, buffer in model.named_buffers():
            if name.endswith('running_mean'):
                buffer.normal_(0.0, 0.1)
            elif name.endswith('running_var'):
                buffer.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp('hub') / 'glpn_tiny_hub.pth'
    torch.save(model.state_dict(), path)
    return model, path


def _build(config, **backbone):
    from mmseg.registry import MODELS
    from pvt_det.config.loading import load_config, register_scope
    cfg = load_config(str(config))
    register_scope(cfg)
    cfg.model.backbone.init_cfg = None
    cfg.model.backbone.update(backbone)
    if backbone.get('arch') == 'mit_b0':  # the head follows the encoder's widths
        cfg.model.decode_head.in_channels = [32, 64, 160, 256]
    return cfg, MODELS.build(cfg.model)


def _rgb_tensor(path) -> torch.Tensor:
    image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0


def test_hub_file_predicts_as_transformers(hub_glpn, tiny_config, depth_data):
    """The hub's GLPN keys (glpn.encoder.*, decoder.*, head.*) load into the config's DepthEstimator exactly and
    predict what transformers predicts."""
    from pvt_det.models.model_checkpoint import fit_checkpoint_file
    hf_model, path = hub_glpn
    _, model = _build(tiny_config)
    report = fit_checkpoint_file(model, str(path))
    assert report.layouts == {'backbone.': 'huggingface_segformer'}
    model.load_state_dict(report.state_dict)
    model.eval()
    image = _rgb_tensor(next((depth_data / 'images' / 'test').glob('*.jpg')))
    with torch.no_grad():
        ours = model.predict(image)[0].pred_depth_map.data
        theirs = hf_model(image).predicted_depth
    assert ours.shape == theirs.shape == (1, *IMAGE_SIZE)
    assert float(theirs.std()) > 0.05  # a prediction that varies, not a saturated sigmoid
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_hub_file_evaluates_through_tools_test(hub_glpn, tiny_config, depth_data, tmp_path, capsys):
    """tools/test.py on the hub file prints mmseg's depth metrics equal to those of transformers' predictions."""
    from mmseg.evaluation.metrics import DepthMetric
    from pvt_det.datasets.synthetic_depth import read_depth_png
    from pvt_det.tools.test import parse_args, test
    hf_model, path = hub_glpn
    out = tmp_path / 'pred'
    metrics = test(parse_args([str(tiny_config), str(path), '--work-dir', str(tmp_path), '--out', str(out)]))
    printed = capsys.readouterr().out
    for name in ('d1', 'd2', 'd3', 'abs_rel', 'rmse', 'log10', 'sq_rel', 'silog'):
        assert f'\n{name}: ' in '\n' + printed
    results = []
    for image in sorted((depth_data / 'images' / 'test').glob('*.jpg')):
        gt = torch.from_numpy(read_depth_png(depth_data / 'annotations' / 'test' / f'{image.stem}.png'))
        with torch.no_grad():
            pred = hf_model(_rgb_tensor(image)).predicted_depth[0]
        results.append((gt[gt > 0], pred[gt > 0]))
        written = cv2.imread(str(out / f'{image.stem}.png'), cv2.IMREAD_UNCHANGED)  # --out: millimetres
        assert written.dtype == np.uint16 and np.abs(written - pred.numpy() * 1000).max() < 1.0 + 1e-3
    reference = DepthMetric().compute_metrics(results)
    ours = {key.split('/')[-1]: value for key, value in metrics.items()}
    for name, value in reference.items():
        assert ours[name] == pytest.approx(value, rel=1e-4, abs=1e-5), name


@pytest.mark.slow
def test_mit_b4_config_builds_glpn():
    """GLPN's published model: MiT-b4 + GLPN decoder, 61.2 M parameters (the paper: 62 M)."""
    cfg, model = _build(os.path.join(CONFIGS, 'glpn_mit_b4_nyu.py'))
    assert model.backbone.arch_name == 'mit_b4' and type(model.decode_head).__name__ == 'GLPNHead'
    assert cfg.model.decode_head.max_depth == 10.0 and cfg.train_cfg.max_iters == 25 * 2019
    assert cfg.crop_size == (448, 576)
    assert [step['type'] for step in cfg.train_dataloader.dataset.pipeline][2] == 'RandomDepthMix'
    assert sum(param.numel() for param in model.parameters()) / 1e6 == pytest.approx(61.2, abs=0.05)


# glpn_mit_b4_nyu.py's step runs with MiT-b0 (the same config, a b0-sized encoder): MiT-b4 only for building.
@pytest.mark.slow
@pytest.mark.parametrize('name, backbone', [
    ('glpn_mit_b4_nyu.py', dict(arch='mit_b0')), ('glpn_pvt_v2_b2_nyu.py', {}), ('glpn_pvt_v2_b0_nyu.py', {})])
def test_config_trains_a_step_and_predicts_input_size(name, backbone):
    from mmseg.structures import SegDataSample
    from mmengine.structures import PixelData
    _, model = _build(os.path.join(CONFIGS, name), **backbone)
    torch.manual_seed(0)
    model.train()
    inputs = torch.rand(2, 3, 32, 32)
    samples = []
    for _ in range(2):
        sample = SegDataSample(metainfo=dict(img_shape=(32, 32), ori_shape=(32, 32), pad_shape=(32, 32)))
        sample.gt_depth_map = PixelData(data=torch.rand(1, 32, 32) * 7.5 + 0.5)
        samples.append(sample)
    losses = model.loss(inputs, samples)
    loss = sum(losses.values())
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    grads = [param.grad for param in model.backbone.parameters() if param.grad is not None]
    assert grads and all(torch.isfinite(grad).all() for grad in grads)
    assert sum(float(grad.abs().sum()) for grad in grads) > 0
    model.eval()
    with torch.no_grad():
        depth = model.predict(torch.rand(1, 3, 40, 50))[0].pred_depth_map.data
    assert depth.shape == (1, 40, 50)  # not a multiple of 32 either
    assert float(depth.min()) > 0 and float(depth.max()) < 10.0


def test_generated_dataset_layout_and_pipeline(tiny_config, depth_data):
    """NYU layout (images/annotations x train/test, 16-bit PNGs in mm, scene-named files) that the config's
    NYUDataset and training pipeline (CutDepth, flip, crop, colour) read as metres."""
    from mmseg.registry import DATASETS
    from pvt_det.config.loading import load_config, register_scope
    from pvt_det.datasets.synthetic_depth import read_depth_png
    depth_file = sorted((depth_data / 'annotations' / 'train').glob('*.png'))[0]
    raw = cv2.imread(str(depth_file), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16 and raw.shape == IMAGE_SIZE and 500 < raw.min() and raw.max() <= 8000
    cfg = load_config(str(tiny_config))
    register_scope(cfg)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    assert len(dataset) == 4 and dataset[0]['data_samples'].category_id >= 0
    gt = dataset.get_data_info(0)['depth_map_path']
    sample = dataset[0]['data_samples']
    assert sample.gt_depth_map.data.shape[1:] == IMAGE_SIZE  # crops larger than the image keep it whole
    assert float(sample.gt_depth_map.data.max()) == pytest.approx(float(read_depth_png(gt).max()), abs=1e-3)


def test_preflight_depth_scale_padding_and_crop(tiny_config, depth_data):
    from pvt_det.config.loading import load_config, register_scope
    from pvt_det.config.preflight import check_config
    loaders = ('train_dataloader', 'test_dataloader')

    def check(**changes):
        cfg = load_config(str(tiny_config))
        register_scope(cfg)
        cfg.merge_from_dict(changes)
        check_config(cfg, loaders)

    check()  # the tiny config is consistent
    pipeline = load_config(str(tiny_config)).train_dataloader.dataset.pipeline
    pipeline[1]['depth_rescale_factor'] = 1.0
    with pytest.raises(ToolError, match=r'look like millimetres: set depth_rescale_factor=1e-3.*depth_range'):
        check(**{'train_dataloader.dataset.pipeline': pipeline})
    pipeline[1]['depth_rescale_factor'] = 1e-7
    with pytest.raises(ToolError, match='depth_rescale_factor is too small'):
        check(**{'train_dataloader.dataset.pipeline': pipeline})
    with pytest.raises(ToolError, match='seg_pad_val=0'):
        check(**{'model.data_preprocessor.seg_pad_val': 255})
    with pytest.raises(ToolError, match="crop_type=None for other image sizes"):
        check(**{'test_evaluator.crop_type': 'nyu_crop'})
    check(**{'test_evaluator.crop_type': 'nyu_crop', 'preflight.skip': ['depth_range']})


@pytest.fixture(scope='module')
def trained_demo(tmp_path_factory):
    """A shortened `make demo-depth`: GLPN-PVTv2-b0 from scratch on the generated set, then its metrics and the
    training-mean baseline's."""
    from pvt_det.config.loading import shipped_config
    from pvt_det.datasets.synthetic_depth import training_mean_metrics
    from pvt_det.tools.demo_training import train_demo
    from pvt_det.tools.demo_depth import write_depth_demo
    work = tmp_path_factory.mktemp('demo_depth')
    iters = 12
    config = write_depth_demo(work, shipped_config('glpn_pvt_v2_b0_nyu.py'), iters, num_train=16, num_test=4,
                              image_size=(64, 64), batch=2)
    metrics, _ = train_demo(config, work)
    metrics = {key.split('/')[-1]: value for key, value in metrics.items()}
    return work, config, work / f'iter_{iters}.pth', metrics, training_mean_metrics(work / 'data')


@pytest.mark.slow
def test_demo_training_beats_the_training_mean(trained_demo):
    from pvt_det.tools.demo_depth import beats_mean
    *_, metrics, baseline = trained_demo
    assert beats_mean(metrics, baseline), (metrics, baseline)
    assert metrics['d1'] > baseline['d1']


@pytest.mark.slow
def test_infer_writes_colour_and_raw_depth(trained_demo, tmp_path):
    from pvt_det.tools.infer import infer
    work, config, checkpoint, *_ = trained_demo
    image = sorted((work / 'data' / 'images' / 'test').glob('*.jpg'))[0]
    paths = infer(str(image), str(config), str(checkpoint), str(tmp_path))
    depth = np.load(paths['depth_npy'])
    millimetres = cv2.imread(str(paths['depth_mm']), cv2.IMREAD_UNCHANGED)
    colour = cv2.imread(str(paths['image']))
    assert depth.dtype == np.float32 and depth.shape == (64, 64) and 0 < depth.min() < depth.max() < 10
    assert millimetres.dtype == np.uint16 and np.abs(millimetres - depth * 1000).max() <= 0.5 + 1e-3
    assert colour.shape == (64, 64, 3) and len(np.unique(colour.reshape(-1, 3), axis=0)) > 1

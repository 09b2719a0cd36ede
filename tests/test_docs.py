"""The docs stay true to the code: commands, configs, links, diffs and tables are checked here."""
from __future__ import annotations

import difflib
import re
from pathlib import Path

from helpers import load_tool

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted((REPO / 'docs').glob('*.md')) + [REPO / 'README.md']
SHELL_LANGS = {'bash', 'sh', 'shell', 'console'}
FENCE = re.compile(r'^```([\w-]*)\n(.*?)^```', re.M | re.S)
# A repository path: at the start of a word or after '../' (not work_dirs/demo/configs/x.py).
_START = r'(?:(?<=\.\./)|(?<![\w/.-]))'
CONFIG_RE = re.compile(_START + r'configs/[\w/.-]+\.py')
TOOL_PATH_RE = re.compile(_START + r'(?:tools|configs)/[\w/.-]+\.(?:py|sh)')
LINK_RE = re.compile(r'\[[^\]]*\]\(([^)\s]+)\)')


def fenced_blocks(path: Path, langs: set[str] | None = None) -> list[str]:
    return [body for lang, body in FENCE.findall(path.read_text()) if langs is None or lang in langs]


def shell_commands() -> list[tuple[str, str]]:
    """(doc name, command) for each command with ``tools/`` in a fenced shell block."""
    commands = []
    for doc in DOCS:
        for block in fenced_blocks(doc, SHELL_LANGS):
            for command in block.replace('\\\n', ' ').splitlines():
                command = command.split(' #')[0].strip()
                if 'tools/' in command and not command.startswith('#'):
                    commands.append((doc.name, command))
    return commands


def test_shell_commands_use_existing_tools_and_configs():
    commands = shell_commands()
    assert len(commands) >= 30, commands  # get_started, swap_resnet, backbones, segmentation
    missing = [(doc, path) for doc, command in commands for path in TOOL_PATH_RE.findall(command)
               if not (REPO / path).exists()]
    assert not missing, missing


def test_shell_commands_use_existing_flags():
    """Every --flag given to a tool is defined by that tool's parser (or the shared CLI helpers)."""
    shared = (REPO / 'pvt_det' / 'tools' / 'args.py').read_text()
    wrappers = {'dist_train.sh': 'train.py', 'dist_test.sh': 'test.py', 'slurm_train.sh': 'train.py'}
    checked = 0
    for doc, command in shell_commands():
        # `diff <(python tools/a.py X) <(...)`: each process substitution is its own command.
        for part in re.split(r'<\(|\)|\||;|&&', command):
            tool = next(iter(re.findall(r'tools/([\w.-]+\.(?:py|sh))', part)), None)
            if tool is None:
                continue
            script = wrappers.get(tool, tool)
            module = REPO / 'pvt_det' / 'tools' / script  # the shim's code
            source = (REPO / 'tools' / script).read_text() + shared + \
                (module.read_text() if module.is_file() else '')
            for flag in re.findall(r'(?:^|\s)(--[\w-]+)', part):
                checked += 1
                assert f"'{flag}'" in source, f'{doc}: {flag} is not an option of tools/{tool}'
    assert checked >= 20


def test_configs_named_in_docs_exist():
    named = {(doc.name, path) for doc in DOCS for path in CONFIG_RE.findall(doc.read_text())}
    assert len(named) >= 20
    missing = sorted((doc, path) for doc, path in named if not (REPO / path).is_file())
    assert not missing, missing


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r'[^\w\- ]', '', heading.strip().lower()).replace(' ', '-')


def test_relative_links_and_anchors_resolve():
    broken = []
    for doc in DOCS:
        for target in LINK_RE.findall(doc.read_text()):
            if target.startswith(('http://', 'https://', 'mailto:')):
                continue
            file_part, _, anchor = target.partition('#')
            path = (doc.parent / file_part).resolve() if file_part else doc
            if not path.exists():
                broken.append(f'{doc.name}: {target}')
            elif anchor and path.suffix == '.md':
                headings = re.findall(r'^#+ (.+)$', path.read_text(), re.M)
                if anchor not in {_slug(h) for h in headings}:
                    broken.append(f'{doc.name}: {target} (no such heading)')
    assert not broken, broken


def _diff(a: str, b: str) -> str:
    return '\n'.join(difflib.unified_diff(a.splitlines(), b.splitlines(),
                                          'configs/retinanet_r50_fpn.py',
                                          'configs/retinanet_pvt_small_fpn.py', lineterm=''))


def test_swap_resnet_diffs_are_the_configs_diffs():
    resolved_shown, files_shown = fenced_blocks(REPO / 'docs' / 'swap_resnet.md', {'diff'})
    r50, pvt = REPO / 'configs' / 'retinanet_r50_fpn.py', REPO / 'configs' / 'retinanet_pvt_small_fpn.py'
    assert files_shown.rstrip('\n') == _diff(r50.read_text(), pvt.read_text())
    print_config = load_tool('print_config')
    resolved = _diff(print_config.resolved_config_text(str(r50)),
                     print_config.resolved_config_text(str(pvt)))
    assert resolved_shown.rstrip('\n') == resolved
    # The swap touches exactly the backbone and the FPN widths.
    changed = [line for line in resolved.splitlines()[2:] if line[:1] in '+-']
    assert any("type='PVT'" in line for line in changed) and any('2048' in line for line in changed)
    # The pasted example is the shipped file.
    example = REPO / 'configs' / 'examples' / 'faster_rcnn_pvt_v2_b2_fpn_mmdet.py'
    assert example.read_text().rstrip('\n') in fenced_blocks(REPO / 'docs' / 'swap_resnet.md',
                                                            {'python'})[1]


def test_backbone_table_matches_the_code():
    import torch
    from pvt_det.models import build_classifier
    from pvt_det.models.backbones import PVT, PVTv2, CvT
    classes = {'PVT': (PVT, 'pvt_'), 'PVTv2': (PVTv2, 'pvt_v2_'), 'CvT': (CvT, 'cvt_')}
    text = (REPO / 'docs' / 'backbones.md').read_text()
    rows = re.findall(r'^\| (\w+) \| (PVT|PVTv2|CvT) \| ([\d, ]+) \| ([\d, ]+) \| ([\d, ]+) \| '
                      r'([^|]+) \| ([\d.]+) \| (\d+) \|$', text, re.M)
    assert len(rows) == 20
    def ints(cell: str) -> list[int]:
        return [int(v) for v in cell.split(',')]
    for arch, kind, widths, depths, heads, sr_ratios, params, min_side in rows:
        cls, prefix = classes[kind]
        spec = cls.arch_zoo[arch]
        assert (ints(widths), ints(depths), ints(heads)) == \
            (spec['embed_dims'], spec['depths'], spec['num_heads']), arch
        if kind != 'CvT':
            assert spec.get('linear', False) == sr_ratios.startswith('linear'), arch
            if not spec.get('linear', False):
                assert ints(sr_ratios) == spec['sr_ratios'], arch
        with torch.device('meta'):
            model = build_classifier(arch if arch.startswith('mit_') else prefix + arch)
        assert f'{sum(p.numel() for p in model.parameters()) / 1e6:.1f}' == params, arch
        assert model.backbone.min_input_size == int(min_side), arch


def _zoo_rows() -> dict[str, list[str]]:
    text = (REPO / 'docs' / 'model_zoo.md').read_text()
    rows = {}
    for line in text.splitlines():
        match = re.match(r'^\| \[([\w.]+)\]\(\.\./configs/\1\) \|(.*)\|$', line)
        if match:
            rows[match[1]] = [cell.strip() for cell in match[2].split('|')]
    return rows


def test_model_zoo_covers_every_config_and_matches_them():
    gen = load_tool('gen_model_zoo')
    text = (REPO / 'docs' / 'model_zoo.md').read_text()
    assert 'GENERATED by `python tools/gen_model_zoo.py`' in text
    rows = _zoo_rows()
    configs = gen.leaf_configs()
    assert sorted(rows) == sorted(p.name for p in configs)
    for path in configs:  # the columns read from the configs are still what the configs say
        info = gen.describe(path)
        backbone, detector, schedule, params, flops, paper, source, checkpoint = rows[path.name]
        assert [backbone, detector, schedule, paper, source, checkpoint.strip('`')] == \
            [info['backbone'], info['detector'], info['schedule'], info['paper'], info['source'],
             info['checkpoint']], path.name
        assert float(params) > 0 and float(flops) > 0
    # Measured numbers: re-count the parameters of one config with tools/get_flops.py's functions.
    from pvt_det.benchmark import flops as get_flops
    from mmengine.analysis import parameter_count
    model, _ = get_flops.build_model(str(REPO / 'configs' / 'retinanet_pvt_v2_b0_fpn.py'),
                                     (800, 1280), backbone_only=False)
    assert f"{parameter_count(model)[''] / 1e6:.2f}" == rows['retinanet_pvt_v2_b0_fpn.py'][3]
    # Segmentation paper numbers are the ones docs/segmentation.md lists.
    seg = (REPO / 'docs' / 'segmentation.md').read_text()
    for name, row in rows.items():
        if name.startswith('sem_fpn_') and row[5] != '—':
            assert re.search(rf'\[{re.escape(name)}\].*\| {re.escape(row[5])} \|$', seg, re.M), name


def _coco_layout(root: Path, classes: tuple[str, ...]) -> None:
    from pvt_det.datasets import make_coco_dataset
    paths = make_coco_dataset(root, num_train=2, num_val=2, image_size=(64, 64), classes=classes)
    (root / 'images').mkdir()
    paths['train_ann'].rename(root / 'annotations' / 'train.json')
    paths['val_ann'].rename(root / 'annotations' / 'val.json')
    paths['train_images'].rename(root / 'images' / 'train')
    paths['val_images'].rename(root / 'images' / 'val')


def test_own_dataset_example_config_reads_its_layout(tmp_path):
    """configs/examples/retinanet_pvt_v2_b0_my_coco.py as get_started.md describes it."""
    from mmdet.registry import DATASETS, MODELS
    from pvt_det.config.loading import load_config, register_scope
    from pvt_det.config.preflight import check_dataset_paths
    cfg = load_config(REPO / 'configs' / 'examples' / 'retinanet_pvt_v2_b0_my_coco.py')
    register_scope(cfg)
    classes = tuple(cfg.metainfo['classes'])
    assert cfg.model.bbox_head.num_classes == len(classes)
    root = tmp_path / 'my_dataset'
    _coco_layout(root, classes)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = f'{root}/'
    cfg.val_evaluator.ann_file = f'{root}/annotations/val.json'
    check_dataset_paths(cfg, ('train_dataloader', 'val_dataloader'))
    dataset = DATASETS.build(cfg.val_dataloader.dataset)
    assert dataset.metainfo['classes'] == classes and len(dataset) == 2
    assert Path(dataset[0]['data_samples'].img_path).parent == root / 'images' / 'val'
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    assert model.bbox_head.num_classes == len(classes)


def test_mmdet_scoped_example_config_builds():
    """`_base_ = 'mmdet::...'` needs pvt_det's compat fix on setuptools without pkg_resources."""
    import pvt_det  # noqa: F401
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(str(REPO / 'configs' / 'examples' / 'faster_rcnn_pvt_v2_b2_fpn_mmdet.py'))
    assert cfg.model.type == 'FasterRCNN' and cfg.optim_wrapper.optimizer.type == 'AdamW'
    assert 'depth' not in cfg.model.backbone  # _delete_ dropped ResNet's keys
    init_default_scope('mmdet')
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    assert type(model.backbone).__name__ == 'PVTv2' and model.backbone.arch_name == 'b2'
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 2) == 42.37  # swap_resnet.md


def _swap_snippet_config(snippet: str, path: Path):
    """A README/swap_resnet.md snippet as the config file it is, next to configs/retinanet_r50_fpn.py."""
    import pvt_det  # noqa: F401  (registers the backbones that custom_imports names)
    from mmengine.config import Config
    assert "_base_ = './retinanet_r50_fpn.py'" in snippet, snippet
    path.write_text(snippet.replace("'./retinanet_r50_fpn.py'",
                                    repr(str(REPO / 'configs' / 'retinanet_r50_fpn.py'))))
    return Config.fromfile(str(path))


def test_readme_swap_snippet_builds_the_swap_guides_model(tmp_path):
    """README's "one config" promise: its snippet gives the same model as docs/swap_resnet.md's,
    pretrained backbone included (a backbone dict without init_cfg trains from scratch)."""
    import torch
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    readme = next(b for b in fenced_blocks(REPO / 'README.md', {'python'}) if '_delete_=True' in b)
    guide = next(b for b in fenced_blocks(REPO / 'docs' / 'swap_resnet.md', {'python'})
                 if "_base_ = './retinanet_r50_fpn.py'" in b)
    configs = [_swap_snippet_config(snippet, tmp_path / f'{name}.py')
               for name, snippet in (('readme', readme), ('guide', guide))]
    assert configs[0].model.to_dict() == configs[1].model.to_dict()  # architecture, widths, init_cfg
    backbone = configs[0].model.backbone
    assert backbone.type in ('PVT', 'PVTv2') and 'depth' not in backbone  # ResNet's keys are gone
    assert backbone.init_cfg['type'] == 'Pretrained' and backbone.init_cfg['checkpoint'].endswith('.pth')
    init_default_scope('mmdet')
    counts = []
    for cfg in configs:
        with torch.device('meta'):  # the architecture only; init_cfg is compared above
            model = MODELS.build(cfg.model)
        assert type(model.backbone).__name__ == backbone.type
        counts.append(sum(p.numel() for p in model.parameters()))
    assert counts[0] == counts[1] > 0


def test_look_inside_pictures_are_written_by_the_commands_shown():
    """Every picture docs/look_inside.md shows exists (under ~300 KB) and one of its commands writes it."""
    page = (REPO / 'docs' / 'look_inside.md').read_text()
    commands = [command for doc, command in shell_commands() if doc == 'look_inside.md']
    pictures = re.findall(r'!\[[^\]]*\]\((images/[\w.-]+\.png)\)', page)
    assert len(pictures) == 3, pictures
    for picture in pictures:
        path = REPO / 'docs' / picture
        assert path.is_file() and path.stat().st_size < 320_000, picture
        writes = f'--out docs/{picture}' if 'scaling' not in picture else '--out-dir docs/images'
        assert any(writes in command for command in commands), picture
    for tool in ('vis_features.py', 'analyze_logs.py', 'benchmark.py scaling'):
        assert any(f'tools/{tool}' in command for command in commands), tool

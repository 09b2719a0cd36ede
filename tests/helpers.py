"""Config fragments shared by the test files that train on generated data."""

# Fixed 64x64 inputs for Semantic FPN on generated ADE20K-layout data: no random resize/crop,
# so a few iterations on the same images must lower the loss.
SEG_64PX_PIPELINES = '''\
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='Resize', scale=(64, 64), keep_ratio=False),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(64, 64), keep_ratio=False),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
'''


def load_tool(name: str):
    """``tools/<name>.py`` as a module (tools/ is not a package; tools import their siblings)."""
    import importlib.util
    import sys
    from pathlib import Path
    tools_dir = Path(__file__).resolve().parents[1] / 'tools'
    if str(tools_dir) not in sys.path:
        sys.path.insert(0, str(tools_dir))
    spec = importlib.util.spec_from_file_location(name, tools_dir / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

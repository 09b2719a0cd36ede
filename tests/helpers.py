"""Config fragments and tool runners shared by the test files that train on generated data."""
import contextlib
import io
import os
import subprocess

# Fixed 64x64 inputs for Semantic FPN on generated ADE20K-layout data: no random resize/crop,
# so a few iterations on the same images must lower the loss. A config training with them pads its
# batches to 64 px the mmseg way (SEG_64PX_PREPROCESSOR), not to the base's 512 px crop.
SEG_64PX_PREPROCESSOR = 'data_preprocessor = dict(size=(64, 64))\n'
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


def seg_64px_config(preprocessor: str = SEG_64PX_PREPROCESSOR) -> str:
    """A Semantic FPN user config (``{base}``, ``{data_root}``, ``{iters}`` to format) that trains from
    scratch on generated ADE20K-layout data with the 64 px pipelines; ``preprocessor`` defines
    ``data_preprocessor``, which the model uses."""
    return '''\
_base_ = {base!r}
data_root = {data_root!r}
''' + preprocessor + SEG_64PX_PIPELINES + '''\
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
model = dict(data_preprocessor=data_preprocessor, backbone=dict(init_cfg=None))
optim_wrapper = dict(optimizer=dict(lr=1e-3))
train_cfg = dict(max_iters={iters}, val_interval={iters})
default_hooks = dict(checkpoint=dict(interval={iters}), logger=dict(interval=1))
randomness = dict(seed=0)
'''

def load_tool(name: str):
    """The code of ``tools/<name>.py``: the ``pvt_det.tools.<name>`` module its shim runs, or, for the
    repository-only tools (tools/ is not a package; they import their siblings), the script itself."""
    import importlib
    import importlib.util
    import sys
    from pathlib import Path
    if importlib.util.find_spec(f'pvt_det.tools.{name}') is not None:
        return importlib.import_module(f'pvt_det.tools.{name}')
    tools_dir = Path(__file__).resolve().parents[1] / 'tools'
    if str(tools_dir) not in sys.path:
        sys.path.insert(0, str(tools_dir))
    spec = importlib.util.spec_from_file_location(name, tools_dir / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


@contextlib.contextmanager
def mmengine_instances_kept(fresh: bool = False):
    """mmengine keeps process-global "current" instances (the latest made) of every ``ManagerMixin`` class: the
    registry scope, the logger, the message hub, the visualizer. Inside, they are as they were (or none, with
    ``fresh``, as in a new interpreter); after it, what was made inside is gone and the earlier ones are back."""
    from mmengine.utils import ManagerMixin
    saved = {manager: dict(manager._instance_dict) for manager in _subclasses(ManagerMixin)}
    if fresh:
        for manager in saved:
            manager._instance_dict.clear()
    try:
        yield
    finally:
        for manager in _subclasses(ManagerMixin):  # classes imported inside had no instances before
            manager._instance_dict.clear()
            manager._instance_dict.update(saved.get(manager, {}))


def run_tool_in_process(tool: str, *args: str, cwd=None) -> subprocess.CompletedProcess:
    """``python tools/<tool>.py ARGS`` run in this process: the ``main`` the shim calls, with the exit status,
    stdout and stderr a ``subprocess.CompletedProcess`` would hold, and mmengine's per-process instances
    fresh during the run, as in a new interpreter (:func:`mmengine_instances_kept`). It saves the 6 s of
    imports each new interpreter pays; the tools' own processes (shim, module, console script) are tested in
    test_newcomer_tools, test_cli and test_packaging."""
    stdout, stderr = io.StringIO(), io.StringIO()
    previous_dir = os.getcwd()
    try:
        os.chdir(cwd or os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        with mmengine_instances_kept(fresh=True), contextlib.redirect_stdout(stdout), \
                contextlib.redirect_stderr(stderr):
            try:
                status = load_tool(tool).main([str(arg) for arg in args])
            except SystemExit as exit_:  # argparse: usage errors and --help
                status = exit_.code
    finally:
        os.chdir(previous_dir)
    return subprocess.CompletedProcess([f'tools/{tool}.py', *args], status or 0, stdout.getvalue(),
                                       stderr.getvalue())

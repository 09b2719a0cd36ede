"""Fixes that make mmengine 0.10 / mmdet 3.3 / mmseg 1.2 work on torch >= 2.6 and numpy 2, and the
``pvt_det::`` prefix that lets other projects' configs inherit pvt_det's.

Each fix is narrow, applied once at ``import pvt_det`` and never edits site-packages.
"""
from __future__ import annotations

import collections
import pickle
from typing import Any

import numpy as np
import torch

_APPLIED = False


def _history_buffer_statistic(owner: Any, name: str) -> Any:
    """Stand-in for ``getattr`` while unpickling: HistoryBuffer pickles its registered statistics
    methods (min/max/mean/current) as ``getattr(HistoryBuffer, 'min')``; nothing else may use it."""
    from mmengine.logging import HistoryBuffer
    HistoryBuffer()  # registers min/max/mean/current: a fresh process (tools/test.py) has none yet
    if owner is HistoryBuffer and name in HistoryBuffer._statistics_methods:
        return getattr(owner, name)
    raise pickle.UnpicklingError(
        f'getattr({owner!r}, {name!r}) is not allowed in a weights_only load; pvt_det only allows '
        'the statistics methods of mmengine HistoryBuffer')


def mmengine_checkpoint_globals() -> list:
    """Globals that mmengine pickles into its own checkpoints (message hub, log buffers, numpy data).

    torch >= 2.6 loads with ``weights_only=True`` by default and rejects these, which breaks
    ``runner.resume`` and ``tools/test.py CKPT``. Allow-listing exactly these keeps the safe
    unpickler on for everything else.
    """
    from mmengine.config import ConfigDict
    from mmengine.logging import HistoryBuffer

    core = getattr(np, '_core', None) or np.core  # numpy 2 renamed np.core to np._core
    allowed: list = [HistoryBuffer, ConfigDict, collections.OrderedDict, collections.defaultdict,
                     np.ndarray, np.dtype, core.multiarray._reconstruct, core.multiarray.scalar,
                     (_history_buffer_statistic, '__builtin__.getattr'),
                     (_history_buffer_statistic, 'builtins.getattr')]
    # numpy 2 pickles dtypes by their classes (numpy.dtypes.Float64DType, ...).
    allowed += [type(np.dtype(name)) for name in ('float64', 'float32', 'float16', 'int64', 'int32',
                                                  'int8', 'uint8', 'bool')]
    return allowed


def allow_mmengine_checkpoints() -> None:
    torch.serialization.add_safe_globals(mmengine_checkpoint_globals())


def init_dist_pytorch_without_cuda() -> None:
    """mmengine's ``pytorch`` launcher (torchrun, tools/dist_train.sh) calls ``torch.cuda.set_device``
    unconditionally, which fails on a CPU-only torch. Without CUDA, only that call is skipped: the
    process group is initialised as mmengine would (gloo backend, set by the tools)."""
    from mmengine.dist import utils

    original = utils._init_dist_pytorch
    if getattr(original, 'pvt_det_patched', False):
        return

    def _init_dist_pytorch(backend: str, init_backend: str = 'torch', **kwargs: Any) -> None:
        if torch.cuda.is_available() or init_backend != 'torch':
            return original(backend, init_backend=init_backend, **kwargs)
        torch.distributed.init_process_group(backend=backend, **kwargs)

    _init_dist_pytorch.pvt_det_patched = True  # type: ignore[attr-defined]
    utils._init_dist_pytorch = _init_dist_pytorch


def _module_of(package: str) -> str:
    """The import name of an installed distribution (``mmsegmentation`` -> ``mmseg``)."""
    import importlib.metadata
    try:
        top_level = importlib.metadata.distribution(package).read_text('top_level.txt') or ''
    except importlib.metadata.PackageNotFoundError:
        return package
    return top_level.split()[0] if top_level.split() else package


def _is_installed(package: str) -> bool:
    import importlib.metadata
    import importlib.util
    try:
        importlib.metadata.distribution(package)
        return True
    except importlib.metadata.PackageNotFoundError:
        spec = importlib.util.find_spec(package)
        return spec is not None and spec.origin is not None


def _get_installed_path(package: str) -> str:
    import importlib.util
    import os.path as osp
    spec = importlib.util.find_spec(_module_of(package))
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f'{package} is not installed (or is a namespace package)')
    return osp.dirname(spec.origin)


def package_lookup_without_pkg_resources() -> None:
    """mmengine finds installed packages with ``pkg_resources``, which recent setuptools (84 here)
    no longer ships, so a config with ``_base_ = 'mmdet::faster_rcnn/...'`` (inheriting mmdet's
    own configs) fails with ``No module named 'pkg_resources'``. Only when it is missing, mmengine's
    two lookups are replaced by ``importlib.metadata`` / ``importlib.util`` equivalents."""
    try:
        import pkg_resources  # noqa: F401
        return
    except ImportError:
        pass
    import mmengine.utils
    from mmengine.config import config
    from mmengine.utils import package_utils
    for module in (package_utils, config, mmengine.utils):
        module.is_installed = _is_installed
        module.get_installed_path = _get_installed_path


_METAFILE_CONFIGS: dict[str, dict] = {}
_uncached_cfg_metainfo: Any = None


def _metafile_configs(package_path: str) -> dict:
    """Config name -> its first metafile entry, over every metafile of the package's model index (the table
    mmengine's ``_get_cfg_metainfo`` builds on each call), read once per package and process."""
    if package_path not in _METAFILE_CONFIGS:
        import os.path as osp

        from mmengine.fileio import load
        configs: dict = {}
        for meta_path in load(osp.join(package_path, '.mim', 'model-index.yml'))['Import']:
            for model in load(osp.join(package_path, '.mim', meta_path))['Models']:
                if 'Config' in model:
                    configs.setdefault(model['Config'].partition('/')[-1], model)
        _METAFILE_CONFIGS[package_path] = configs
    return _METAFILE_CONFIGS[package_path]


def _cfg_metainfo(package_path: str, cfg_path: str) -> dict:
    configs = _metafile_configs(package_path)
    if cfg_path not in configs:  # a `_base_/...` file: mmengine then looks in .mim/configs, as before
        raise ValueError(f'{cfg_path} is not a model config of {package_path}')
    return configs[cfg_path]


def config_lookup_reads_metafiles_once() -> None:
    """mmengine resolves each ``mmdet::``/``mmseg::`` base by parsing every metafile of the package (about
    100 YAML files), again for each base, although in mmengine 0.10 the name it asks for (without ``.py``)
    never matches. Read once per process, the table answers as mmengine's lookup does: a user config over
    ``mask_rcnn_pvt_v2_b0_fpn.py`` loads in 0.13-0.21 s instead of 0.73-1.0 s, and a tool run reads its
    config three times (tests/test_overheads.py)."""
    global _uncached_cfg_metainfo
    from mmengine.config import utils as config_utils
    from mmengine.hub import hub
    if config_utils._get_cfg_metainfo is not _cfg_metainfo:
        _uncached_cfg_metainfo = config_utils._get_cfg_metainfo  # mmengine's own (tests compare the two)
    for module in (config_utils, hub):
        module._get_cfg_metainfo = _cfg_metainfo


# What a config names before ``::`` to inherit a shipped config: ``_base_ = 'pvt_det::configs/<file>.py'``.
PACKAGE = 'pvt_det'


def _package_scope_to_default_scope(original: Any) -> Any:
    def _dict_to_config_dict(cfg: Any, scope: str | None = None, has_scope: bool = True) -> Any:
        if scope == PACKAGE and isinstance(cfg, dict):
            # The whole base config: its objects belong to the library its default_scope names.
            scope = cfg.get('default_scope')
        return original(cfg, scope, has_scope)

    _dict_to_config_dict.pvt_det_patched = True  # type: ignore[attr-defined]
    return _dict_to_config_dict


def configs_inheritable_from_the_package() -> None:
    """Let a config anywhere inherit an installed pvt_det's configs: ``_base_ = 'pvt_det::configs/<file>.py'``.

    mmengine resolves ``<package>::<path>`` only for the packages of its ``MODULE2PACKAGE`` table, to
    ``<installed package>/.mim/configs/<path>`` (where setup.py puts the repository's ``configs/`` tree, under
    ``configs/``). It gives the inherited objects the registry scope ``<package>``; pvt_det has no registry of
    its own (its backbones are registered in mmdet's and mmseg's), so a ``pvt_det::`` base takes the scope its
    own ``default_scope`` names, ``mmdet`` or ``mmseg``: the same as inheriting mmdet's or mmseg's config.

    mmengine reads ``_base_`` before a config's ``custom_imports`` run, so ``pvt_det`` must be imported first:
    its tools do that (``pvt-det-train``, ``tools/*.py``, ``mim train pvt_det``).
    """
    from mmengine.config import Config
    from mmengine.config import utils as config_utils

    config_utils.MODULE2PACKAGE.setdefault(PACKAGE, PACKAGE)
    original = Config._dict_to_config_dict
    if not getattr(original, 'pvt_det_patched', False):
        Config._dict_to_config_dict = staticmethod(_package_scope_to_default_scope(original))


def apply() -> None:
    global _APPLIED
    if _APPLIED:
        return
    allow_mmengine_checkpoints()
    init_dist_pytorch_without_cuda()
    package_lookup_without_pkg_resources()
    configs_inheritable_from_the_package()
    config_lookup_reads_metafiles_once()
    _APPLIED = True

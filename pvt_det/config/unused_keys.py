"""Settings that cannot reach the run: top-level config keys that were read only while the file was parsed.

mmengine runs a config file as Python once. ``train_cfg = dict(max_epochs=max_epochs)`` copies the value of
the variable ``max_epochs`` into ``train_cfg`` at that moment; setting ``max_epochs`` later -- with
``--cfg-options max_epochs=36`` or in a config that inherits the file -- changes the variable and nothing
else, because nothing reads the variable after parsing. The run then silently trains what the file said.

:func:`ineffective_settings` names each such setting with the keys that hold the old value now;
:func:`check_settings_take_effect` turns them into one line for the tools (train, test).
:func:`parse_time_variables` lists the variables themselves, which tools/print_config.py leaves out.

How the readers are found: the source of every file of the ``_base_`` chain is read (not run) and, for each
top-level assignment, the names its value uses are collected (``x``, ``_base_.x``, ``{{_base_.x}}``).
"""
from __future__ import annotations

import ast
import os.path as osp
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from mmengine.config import Config

from ..cli import ToolError

# Top-level keys that something reads after parsing: mmengine's Runner (Runner.from_cfg), mmengine's
# Config (custom_imports), the OpenMMLab inferencers (test_pipeline: mmseg's inference API), pvt_det's tools.
RUNTIME_KEYS = frozenset({
    'model', 'work_dir', 'train_dataloader', 'val_dataloader', 'test_dataloader', 'train_cfg', 'val_cfg',
    'test_cfg', 'auto_scale_lr', 'optim_wrapper', 'param_scheduler', 'val_evaluator', 'test_evaluator',
    'default_hooks', 'custom_hooks', 'data_preprocessor', 'load_from', 'resume', 'launcher', 'env_cfg',
    'log_processor', 'log_level', 'visualizer', 'default_scope', 'randomness', 'experiment_name', 'cfg',
    'model_wrapper_cfg', 'compile', 'strategy', 'custom_imports', 'preflight', 'tta_model', 'tta_pipeline',
    'test_pipeline',
})
CHECK_NAME = 'unused_keys'
_BASE_PLACEHOLDER = re.compile(r'\{\{\s*_base_\.(\w+)[\w.]*\s*\}\}')
_PREDEFINED_PLACEHOLDER = re.compile(r'\{\{\s*\w+\s*\}\}')


@dataclass(frozen=True)
class IneffectiveSetting:
    """``key=value`` was set (by ``source``) but the config had already copied its old value elsewhere."""

    key: str  # as set, e.g. 'max_epochs' or 'train_pipeline.2.scale'
    value: Any
    source: str  # '--cfg-options' or the config file that set it
    holders: tuple[tuple[str, Any], ...]  # (dotted key, value it holds now), e.g. ('train_cfg.max_epochs', 12)
    readers: tuple[str, ...] = ()  # top-level keys computed from it when the file was parsed

    def message(self) -> str:
        top, rest = self.key.split('.', 1)[0], self.key[len(self.key.split('.', 1)[0]):]
        setting = f'{self.key}={self.value!r} ({self.source}) has no effect'
        if self.holders:
            now = ', '.join(f'{key} ({_short_repr(value)})' if rest == '' else key for key, value in self.holders)
            fix = ', '.join(f'{key}{rest}={self.value!r}' for key, value in self.holders
                            if rest or value != self.value)
            return (f'{setting}: the config read {top} into {now} when it was parsed; set '
                    f'{fix or "those keys"} instead')
        if self.readers:
            return (f'{setting}: the config computed {", ".join(self.readers)} from {top} when it was parsed; '
                    'set those keys instead')
        return f'{setting}: nothing reads the top-level key {top!r} after the config is parsed'


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + '...'


# ---------------------------------------------------------------------------------------- reading sources
@lru_cache(maxsize=256)
def _file_info(path: str, mtime: float) -> tuple[dict[str, frozenset[str]], tuple[str, ...]]:
    """(top-level name -> the names its value uses, resolved ``_base_`` paths) of one config file."""
    del mtime  # part of the cache key only: an edited file is read again
    with open(path, encoding='utf-8') as file:
        source = file.read()
    # `{{_base_.x}}` becomes `_base_.x`, other `{{ placeholders }}` a string: the source parses as Python.
    source = _PREDEFINED_PLACEHOLDER.sub("''", _BASE_PLACEHOLDER.sub(r'_base_.\1', source))
    reads: dict[str, set[str]] = {}
    for statement in ast.parse(source).body:
        if isinstance(statement, ast.Assign):
            targets, value = statement.targets, statement.value
        elif isinstance(statement, (ast.AugAssign, ast.AnnAssign)) and statement.value is not None:
            targets, value = [statement.target], statement.value
        else:
            continue
        used = _names_used(value)
        for target in targets:
            for name in _assigned_names(target):
                reads.setdefault(name, set()).update(used - {name} if isinstance(statement, ast.Assign)
                                                     else used)
    bases = tuple(Config._get_cfg_path(base, path)[0] for base in Config._get_base_files(path)) \
        if '_base_' in reads else ()
    reads.pop('_base_', None)
    return {name: frozenset(used) for name, used in reads.items()}, bases


def _names_used(node: ast.AST) -> set[str]:
    names = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Load) and child.id != '_base_':
            names.add(child.id)
        elif (isinstance(child, ast.Attribute) and isinstance(child.value, ast.Name)
              and child.value.id == '_base_'):
            names.add(child.attr)
    return names


def _assigned_names(target: ast.AST) -> Iterator[str]:
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, (ast.Tuple, ast.List)):
        for element in target.elts:
            yield from _assigned_names(element)


def _info(path: str) -> tuple[dict[str, frozenset[str]], tuple[str, ...]]:
    return _file_info(path, osp.getmtime(path))


def _chain(path: str) -> list[str]:
    """The file and every file it inherits from, children before their bases, each once."""
    seen: list[str] = []
    pending = [osp.abspath(path)]
    while pending:
        current = pending.pop(0)
        if current in seen or not current.endswith('.py'):
            continue
        seen.append(current)
        pending.extend(_info(current)[1])
    return seen


def _readers(files: list[str], key: str) -> set[str]:
    """Top-level keys whose assignment, in any of ``files``, uses the name ``key``."""
    return {name for file in files for name, used in _info(file)[0].items() if key in used and name != key}


def _final_readers(files: list[str], key: str) -> set[str]:
    """The keys that hold what ``key`` was when parsed: its readers, and for a reader that is itself a
    variable (``metainfo = dict(classes=classes)``), that variable's readers, and so on."""
    found, pending = set(), [key]
    while pending:
        for reader in _readers(files, pending.pop()):
            if reader not in found:
                found.add(reader)
                pending.append(reader)
    return found


def parse_time_variables(path: str) -> set[str]:
    """Top-level names of a config's chain that nothing reads after parsing: those other keys used
    (``pvt_small_backbone``, ``train_pipeline``, ``max_epochs``, ...) and those a ``_base_`` file defines for
    its children (``pvt_v2_b2_li_backbone`` where no child uses it). A name only the file itself defines
    and uses nowhere stays: something outside the configs (a custom hook) may read it."""
    files = _chain(path)
    assigned = {name for file in files for name in _info(file)[0]}
    in_bases = {name for file in files[1:] for name in _info(file)[0]}
    used = {name for file in files for names in _info(file)[0].values() for name in names}
    return ((used & assigned) | in_bases) - RUNTIME_KEYS


# ---------------------------------------------------------------------------------------- the check
def _holders(node: Any, old: Any, key: str) -> Iterator[tuple[str, Any]]:
    """Dotted keys under ``node`` whose value is ``old`` (same type: a 1 is not a True)."""
    if type(node) is type(old) or (isinstance(node, dict) and isinstance(old, dict)):
        if node == old:
            yield key, node
            return
    if isinstance(node, dict):
        for name, value in node.items():
            yield from _holders(value, old, f'{key}.{name}')
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            yield from _holders(value, old, f'{key}.{index}')


def _plain(value: Any) -> Any:
    return value.to_dict() if hasattr(value, 'to_dict') else value


def _finding(cfg: Config, files: list[str], key: str, old: Any, new: Any, value: Any, source: str,
             explicit: bool) -> IneffectiveSetting | None:
    """``key`` (dotted or not) set to ``value``: its top-level name went from ``old`` to ``new``.
    ``explicit`` (``--cfg-options``): the user asked for exactly this key, so a finding without holders is
    one too; a child config's setting counts only where its old value is still in use."""
    top = key.split('.', 1)[0]
    if top in RUNTIME_KEYS or _plain(old) == _plain(new):
        return None
    readers = _final_readers(files, top)
    variables = parse_time_variables(files[0])  # copied on by their own readers, which are searched too
    readers -= variables
    holders = tuple(found for reader in sorted(readers) if reader in cfg
                    for found in _holders(_plain(cfg[reader]), _plain(old), reader)) if old is not None else ()
    if holders or explicit:
        return IneffectiveSetting(key, _plain(value), source, holders, tuple(sorted(readers)))
    return None


@lru_cache(maxsize=64)
def _parsed_file(path: str, mtimes: tuple[float, ...]) -> dict:
    del mtimes  # part of the cache key only
    # custom_imports were imported when the whole config was loaded; a base alone may name a missing one
    return Config.fromfile(path, import_custom_modules=False)._cfg_dict.to_dict()


def _parsed(path: str) -> dict:
    """The config of one file as a plain dict (cached until a file of its chain changes)."""
    return _parsed_file(path, tuple(osp.getmtime(file) for file in _chain(path)))


def _merged_bases(path: str) -> dict:
    merged: dict = {}
    for base in _info(path)[1]:
        merged.update(_parsed(base))
    return merged


def ineffective_settings(path: str, cfg: Config, cfg_options: dict | None = None) -> list[IneffectiveSetting]:
    """Top-level settings of ``cfg`` (loaded from ``path``, then ``cfg_options`` merged) that nothing reads
    after parsing although an earlier file or the file itself had already copied their old value.

    * ``--cfg-options KEY=VALUE`` for a top-level ``KEY`` that is not read at run time: reported with the keys
      that hold its old value, or as read by nothing at all (e.g. a misspelt name);
    * a config file setting a key that one of its ``_base_`` files had defined and copied elsewhere.
    """
    files = _chain(path)
    findings = []
    # A dotted key under a parse-time variable (train_pipeline.2.scale) is as ineffective as the variable.
    options = {key: value for key, value in (cfg_options or {}).items() if key.split('.', 1)[0] not in RUNTIME_KEYS}
    top_level_options = {key.split('.', 1)[0] for key in options}
    if options:
        parsed = _parsed(osp.abspath(path))
        for key, value in options.items():
            top = key.split('.', 1)[0]
            finding = _finding(cfg, files, key, parsed.get(top), cfg.get(top), value, '--cfg-options', True)
            if finding:
                findings.append(finding)
    for child in files:
        own, bases = _info(child)
        overridden = [key for key in own if key not in RUNTIME_KEYS and key not in top_level_options
                      and _readers(_chain(child)[1:], key)]
        if not bases or not overridden:
            continue
        before = _merged_bases(child)
        child_values = _parsed(child)
        for key in overridden:
            if key in before and key in child_values:
                finding = _finding(cfg, files, key, before[key], child_values[key], child_values[key],
                                   osp.basename(child), False)
                if finding:
                    findings.append(finding)
    return findings


def check_settings_take_effect(path: str, cfg: Config, cfg_options: dict | None = None) -> None:
    """Stop with one line per ineffective setting (see :func:`ineffective_settings`), unless the config
    skips the check with ``preflight = dict(skip=['unused_keys'])``."""
    skip = (cfg.get('preflight') or {}).get('skip') or []
    if CHECK_NAME in ([skip] if isinstance(skip, str) else skip):
        return
    findings = ineffective_settings(str(path), cfg, cfg_options)
    if findings:
        raise ToolError('; '.join(finding.message() for finding in findings)
                        + f" [check '{CHECK_NAME}'; if this is intended, add "
                        f"preflight = dict(skip=['{CHECK_NAME}']) to the config]")

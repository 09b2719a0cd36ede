"""Files written so that a kill mid-write never leaves a half-written one: write a temporary file in the
destination's directory, flush it to disk, then rename it over the destination (atomic within a directory)."""
from __future__ import annotations

import os
import os.path as osp
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

# Temporary files start with this prefix; a run that finds some left over knows an earlier one was killed.
TMP_PREFIX = '.tmp-'


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path to write to; on success it replaces ``path``, on failure it is removed and
    ``path`` (if it existed) is untouched. The suffix is kept, for writers that look at it."""
    path = os.fspath(path)
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=osp.splitext(path)[1], dir=directory)
    os.close(fd)
    try:
        yield tmp_path
        fsync_file(tmp_path)
        os.chmod(tmp_path, 0o644)  # mkstemp creates 0600; a checkpoint is an ordinary file
        os.replace(tmp_path, path)
    except BaseException:
        if osp.exists(tmp_path):
            os.remove(tmp_path)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new content, never a mix."""
    with atomic_output(path) as tmp_path, open(tmp_path, 'w') as f:
        f.write(text)


def fsync_file(path: str) -> None:
    with open(path, 'rb') as f:
        os.fsync(f.fileno())

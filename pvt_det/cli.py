"""What every command-line tool in ``tools/`` shares: a failure is one readable line, never a traceback.

Each tool decorates its ``main(argv=None)`` with :func:`cli_main` and ends with ``sys.exit(main())``:

* success returns 0;
* any exception prints ``<tool>: error: <message>`` on stderr and returns 1 (``PVT_DET_DEBUG=1`` re-raises
  it, for the traceback);
* Ctrl-C prints ``<tool>: interrupted`` and returns 130;
* wrong arguments are argparse's business: a usage line and exit status 2, as in every Python tool.
"""
from __future__ import annotations

import functools
import inspect
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

DEBUG_ENV = 'PVT_DET_DEBUG'


class ToolError(Exception):
    """A problem the user fixes by changing an argument, a path or a config value.

    The message names the offending value and says what to change; it is printed as is.
    """


def one_line(exc: BaseException) -> str:
    """The exception's message with its whitespace collapsed to one line; other than for :class:`ToolError`,
    prefixed by the exception type and followed by how to see the traceback."""
    message = ' '.join(str(exc).split()) or repr(exc)
    if isinstance(exc, ToolError):
        return message
    return f'{type(exc).__name__}: {message} (set {DEBUG_ENV}=1 for the traceback)'


def cli_main(main: Callable[[list[str] | None], int | None]) -> Callable[[list[str] | None], int]:
    """Wrap a tool's ``main(argv)`` so that it returns an exit status instead of raising."""
    prog = Path(inspect.getfile(main)).stem

    @functools.wraps(main)
    def run(argv: list[str] | None = None) -> int:
        try:
            return _leave_distributed(main(argv) or 0)
        except KeyboardInterrupt:
            print(f'{prog}: interrupted', file=sys.stderr)
            return _leave_distributed(130)
        except Exception as exc:  # noqa: BLE001 - every failure becomes one readable line
            if os.environ.get(DEBUG_ENV):
                raise
            print(f'{prog}: error: {one_line(exc)}', file=sys.stderr)
            return _leave_distributed(1)

    return run


def _leave_distributed(status: int) -> int:
    """A process of a distributed (torchrun) run ends here, once its logs and output are flushed.

    At a normal interpreter exit a gloo worker thread may still be releasing the tensors of the last collective;
    taking the GIL while Python finalizes kills it and the process aborts with SIGABRT ("terminate called
    without an active exception", found with gdb on a core dump: ``ProcessGroupGloo::AsyncWork`` destructor ->
    ``decref_pyobject`` -> ``take_gil`` -> thread exit). That failed about 1 in 4 CPU torchrun runs, after all
    the work was done. Every file is written by then; only the interpreter's own teardown is skipped.
    """
    distributed = sys.modules.get('torch.distributed')
    if distributed is not None and distributed.is_available() and distributed.is_initialized():
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status

"""The command-line tools, importable: ``tools/<name>.py`` in the repository and the ``pvt-det-*`` console
scripts are thin shims over ``pvt_det.tools.<name>.main``.

One module per tool (``train``, ``test``, ``infer``, ``demo``, ``print_config``, ...), and the pieces they share,
one concern each:

* :mod:`.args` — mmdet's common command-line flags;
* :mod:`.run_options` — work dir, mixed precision, adapting a config to this machine;
* :mod:`.runner` — building mmengine's runner from a prepared config.

Reading and checking configs is library code, in :mod:`pvt_det.config` (loading, preflight, unused_keys,
dataset_contents). Every ``main(argv=None)`` is wrapped by :func:`pvt_det.cli.cli_main`: a failure is one line
and exit status 1. The modules import absolutely (``from pvt_det.tools.args import ...``): ``mim train/test``
runs them as plain files, where a relative import has no parent package.
"""

"""The command-line tools, importable: ``tools/<name>.py`` in the repository and the ``pvt-det-*`` console
scripts are thin shims over ``pvt_det.tools.<name>.main``.

One module per tool (``train``, ``test``, ``infer``, ``demo``, ``print_config``, ...), and the pieces they share,
one concern each:

* :mod:`.args` — mmdet's common command-line flags;
* :mod:`.configs` — reading a config, its registry scope, work dir, and adapting it to this machine;
* :mod:`.preflight` — checks that run before any data is read or any step is taken;
* :mod:`.runner` — building mmengine's runner from a prepared config.

Every ``main(argv=None)`` is wrapped by :func:`pvt_det.cli.cli_main`: a failure is one line and exit status 1.
"""

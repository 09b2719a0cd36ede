"""The benchmark behind ``tools/benchmark.py`` and ``tools/get_flops.py``, one concern per module:

* :mod:`.archs` — the architectures compared, as each implementation names them;
* :mod:`.peers` — ours, mmdet's and Hugging Face's backbones holding the same weights;
* :mod:`.measure` — timed steps, peak memory, the matmul reference, worker processes;
* :mod:`.detector` — RetinaNet-PVT-S, ours against mmdet's config;
* :mod:`.runs` — a backbone or detector comparison and the worker that times one implementation;
* :mod:`.report` — the Markdown tables;
* :mod:`.scaling` — time and memory against the input side (CSV, log-log plot, fitted slopes);
* :mod:`.flops` — parameters and FLOPs, attention matmuls included.
"""

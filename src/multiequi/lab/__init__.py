"""The lab: everything multiequi runs to measure itself, built on the public library only.

Rooms (each imports only the rooms below it and the library; ``docs/architecture.md`` draws
them and the import contracts in ``pyproject.toml`` check them):

- :mod:`.experiments`: the experiments (demo, SCAN, multi-image, ...), none importing another;
- :mod:`.bench`: every benchmark workload (images, tokens, SCAN throughput), the GPU check and
  the profiler; it never imports an experiment;
- :mod:`.training`: the one training loop (Hugging Face Accelerate) and its multi-process helpers;
- :mod:`.datasets`: the data sets experiments and benchmarks share (SCAN grammar and splits,
  Fashion-MNIST and image folders, sample photos and ImageNet class names);
- :mod:`.reporting`: records, tables, plots, progress bars, machine info and timing.

The lab's extra dependencies come with ``pip install 'multiequi[experiments]'`` (and
``[bench]``, ``[demo]``); the library (``multiequi``, ``multiequi.groups``, ...) never imports it.
"""

"""Data sets the lab's experiments and benchmarks share (experiments may not import each other,
so what two of them read lives here).

- :mod:`.scan`: SCAN / SCAN-II from the grammar (commands, splits, files, encoding, the task's
  word-swap groups);
- :mod:`.images`: real Fashion-MNIST (Debian's ``dataset-fashion-mnist``) and a user's image
  folder;
- :mod:`.photos`: sample photos shipped with scikit-image and scikit-learn, ImageNet-1k class
  names (the ``[demo]`` extra).

The submodules are imported on use: ``from multiequi.lab.datasets.scan import Vocab``.
"""

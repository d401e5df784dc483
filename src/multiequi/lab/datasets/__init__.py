"""Data sets the lab's experiments and benchmarks share (experiments may not import each other,
so what two of them read lives here).

- :mod:`.scan`: SCAN / SCAN-II from the grammar (commands, splits, files, encoding, the task's
  word-swap groups);
- :mod:`.images`: real Fashion-MNIST (Debian's ``dataset-fashion-mnist``, fetched into
  multiequi's cache when not installed), CIFAR-100, ImageNet-V2, a user's image folder, and
  batches prepared for natural-image encoders (:func:`~.images.natural_images`);
- :mod:`.transforms`: per-image seeded random rotations and flips (the zero-shot experiment);
- :mod:`.text`: Jane Austen's novels (Debian's ``r-cran-janeaustenr``) and CrowS-Pairs;
- :mod:`.photos`: sample photos shipped with scikit-image and scikit-learn, ImageNet-1k class
  names (the ``[demo]`` extra).

The submodules are imported on use: ``from multiequi.lab.datasets.scan import Vocab``.
"""

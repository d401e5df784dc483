"""The experiments: each uses only the public library, the lab's shared rooms (reporting,
training, datasets) and the models; none imports another (an import contract checks it).

- :mod:`.demo`: a real pretrained classifier made rotation- and flip-invariant (``multiequi demo``);
- :mod:`.scan`: SCAN / SCAN-II compositional generalisation (``multiequi scan``);
- :mod:`.multi_image`: K-tuples of independently transformed images (``multiequi multi-image``).

A new experiment is a subpackage here, a page in ``docs/`` and a subcommand module in
:mod:`multiequi.cli` (see ``docs/architecture.md``).
"""

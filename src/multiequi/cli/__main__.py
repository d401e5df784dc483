"""``python -m multiequi.cli``: the ``multiequi`` command without its console script (for example
under ``accelerate launch -m multiequi.cli ...`` or from a source tree on ``PYTHONPATH``)."""

from . import main

raise SystemExit(main())

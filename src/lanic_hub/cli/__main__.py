"""``python -m lanic_hub.cli``: the ``lanic-hub`` command."""

from . import main

raise SystemExit(main())

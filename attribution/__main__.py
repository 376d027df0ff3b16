"""``python -m attribution`` runs the ``vattr`` command line."""

from attribution.cli import main

raise SystemExit(main())

"""``python -m vattr`` runs the ``vattr`` command line."""

from vattr.cli import main

raise SystemExit(main())

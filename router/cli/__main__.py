"""`python -m router.cli` runs the `firstline` command."""

from router.cli.main import main

raise SystemExit(main())

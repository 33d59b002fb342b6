"""``python -m w2vc ...``: the command line, defined in w2vc/cli.py (made by chapter 12)."""
from w2vc.cli import main

raise SystemExit(main())

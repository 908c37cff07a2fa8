"""``python -m bigseg ...``: the command line, where the ``bigseg`` script is not on the PATH."""

from .cli import main

raise SystemExit(main())

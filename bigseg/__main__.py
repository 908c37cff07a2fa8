"""``python -m bigseg ...``: the command line, where the ``bigseg`` script is not on the PATH."""

from .cli import main

if __name__ == "__main__":  # imported (pkgutil.walk_packages, Sphinx autosummary, pydoc), it runs nothing
    raise SystemExit(main())

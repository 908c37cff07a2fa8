"""kernels (see docs/design.md)."""

from __future__ import annotations


def _cache_where_writable() -> None:
    """Where numba can keep the compiled kernels (``cache=True``) neither beside their source nor
    in the user's cache folder (a read-only install: a container image or a site-wide
    environment, with a read-only or unset ``HOME``), it refused to define them, so that
    ``import bigseg`` failed ("cannot cache function ...: no locator available"). There they
    are kept in a private temporary folder for this process's life (compiled once per process),
    unless ``NUMBA_CACHE_DIR`` names a folder."""
    import atexit
    import shutil
    import tempfile

    import numba

    try:
        from numba.core import caching

        def probe() -> None:  # pragma: no cover - never called
            pass

        if numba.config.CACHE_DIR or any(locator.from_function(probe, __file__) is not None for locator in
                                         (caching.InTreeCacheLocator, caching.UserWideCacheLocator)):
            return
    except (ImportError, AttributeError):  # another numba: its own rules
        return
    numba.config.CACHE_DIR = tempfile.mkdtemp(prefix="bigseg-numba-")  # private (0700): its pickles are loaded
    atexit.register(shutil.rmtree, numba.config.CACHE_DIR, ignore_errors=True)


_cache_where_writable()

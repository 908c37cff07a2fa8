"""kernels (see docs/design.md)."""

from __future__ import annotations


def cache_locators() -> tuple:
    """numba's locators of a kernel's cache beside its source and in the user's cache folder
    (numba 0.60 names them ``_InTreeCacheLocator`` / ``_UserWideCacheLocator``: looked up by the
    later names only, a read-only install under it failed ``import bigseg`` all the same)."""
    from numba.core import caching

    return tuple(getattr(caching, name, None) or getattr(caching, "_" + name)
                 for name in ("InTreeCacheLocator", "UserWideCacheLocator"))


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
        def probe() -> None:  # pragma: no cover - never called
            pass

        if numba.config.CACHE_DIR or any(locator.from_function(probe, __file__) is not None
                                         for locator in cache_locators()):
            return
    except (ImportError, AttributeError):  # another numba: its own rules
        return
    numba.config.CACHE_DIR = tempfile.mkdtemp(prefix="bigseg-numba-")  # private (0700): its pickles are loaded
    atexit.register(shutil.rmtree, numba.config.CACHE_DIR, ignore_errors=True)


_cache_where_writable()

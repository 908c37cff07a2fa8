"""glibc malloc tuning: set once at import, opt-out honoured, a user's MALLOC_ARENA_MAX left alone."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc-only tuning (a no-op elsewhere)")

PROBE = "import bigseg.runtime._malloc as m; print(m._STATE.get('arenas'), m.limit_heap_growth()); m.release_free_heap()"


def _probe(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("BIGSEG_MALLOC_TUNING", "MALLOC_ARENA_MAX")}
    out = subprocess.run([sys.executable, "-c", "import bigseg; " + PROBE], capture_output=True, text=True,
                         env={**clean, **env}, check=True)
    return out.stdout.strip()


def test_arena_cap_set_once_at_import():
    assert _probe() == "1 True"  # mallopt succeeded when bigseg was imported


def test_opt_out_and_user_setting_are_honoured():
    assert _probe(BIGSEG_MALLOC_TUNING="0") == "None False"
    assert _probe(MALLOC_ARENA_MAX="4") == "None False"

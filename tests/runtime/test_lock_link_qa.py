"""A symbolic link planted at an output's lock name (a shared folder) is refused, not followed:
the lock was opened through it and the file it pointed to truncated and overwritten with the
holder's record (QA: facility security review)."""

from __future__ import annotations

import os

import pytest

from bigseg.errors import OutputNotWritableError
from bigseg.runtime._lock import held, lock_path


def test_a_link_at_the_lock_name_is_refused_and_its_target_left_alone(tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me\n")
    target = tmp_path / "out.ome.zarr"
    os.symlink(precious, lock_path(target))
    with pytest.raises(OutputNotWritableError, match="symbolic link"):
        with held(target, argument="path"):
            pass
    assert precious.read_text() == "keep me\n"

"""A checkpoint's metadata cannot make loading it build a network of any size: the network is
first described on the meta device (shapes, no memory) and refused unless the stored weights are
exactly its weights. A 0.7 MB file asking for channels (4096, 8192, 16384) allocated tens of GiB
before any check (QA: facility security review)."""

from __future__ import annotations

import json

import pytest
import torch

from bigseg import models
from bigseg.errors import ModelError


def test_metadata_asking_for_another_network_is_refused_before_building_it(tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    models.save(models.create("unet3d", channels=(4, 8)), path)
    blob = torch.load(path, weights_only=True)
    meta = json.loads(blob["meta"])
    meta["arch_kwargs"]["channels"] = [4096, 8192, 16384]
    blob["meta"] = json.dumps(meta)
    torch.save(blob, path)
    built = []
    real = torch.nn.Conv3d.__init__

    def spy(self, *args, **kwargs):
        device = torch.device(kwargs.get("device") or torch.get_default_device())
        if device.type != "meta" and max(args[:2]) > 1024:  # (not allocated here either: tens of GiB)
            raise AssertionError(f"a Conv3d{args[:2]} allocated on {device}")
        built.append(device)
        real(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Conv3d, "__init__", spy)
    with pytest.raises(ModelError, match=r"not built"):
        models.load(path)
    assert built and all(d.type == "meta" for d in built)  # nothing the size asked for allocated


def test_a_consistent_checkpoint_still_loads(tmp_path):
    path = tmp_path / "m.pt"
    models.save(models.create("unet3d", channels=(4, 8)), path)
    assert models.load(path).arch_kwargs["channels"] == [4, 8]

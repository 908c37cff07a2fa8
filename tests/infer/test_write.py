"""write_prediction: labels, float16 probabilities and uncertainty in the OME-Zarr labels group."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import zarr
from ._infer_nets import conv3d_net

import bigseg
from bigseg.errors import InputError, OutputExistsError
from bigseg.infer import predict, reset_worker_stats, worker_stats, write_prediction


@pytest.fixture
def image(tmp_path):
    x = np.random.default_rng(1).normal(size=(18, 21, 25)).astype(np.float32)
    path = tmp_path / "img.ome.zarr"
    bigseg.save_volume(x, path, chunks=(9, 11, 13), voxel_size=(0.5, 0.5, 0.5), unit="um", progress=False)
    return path, x


def test_round_trip(image):
    path, x = image
    vol = bigseg.open_volume(path)
    ds = predict(vol, conv3d_net(), patch=(8, 8, 8), probabilities=True, uncertainty="margin")
    p = ds["probabilities"].values
    reset_worker_stats()
    out = write_prediction(ds, path, progress=False)
    assert worker_stats()["patches"] == ds.attrs["n_patches"]  # the model ran once for all outputs
    labels = bigseg.open_volume(path, label="segmentation")
    assert labels.attrs["phases"] == ["pore", "cbd", "active"]
    assert labels.attrs["voxel_size"] == (0.5, 0.5, 0.5) and labels.attrs["unit"] == "um"
    np.testing.assert_array_equal(labels.values, p.argmax(0))
    prob = bigseg.open_volume(out["probabilities"])
    assert prob.dims == ("phase", "z", "y", "x") and prob.dtype == np.float16
    np.testing.assert_allclose(prob.values.astype(np.float32), p, atol=1e-3)
    unc = bigseg.open_volume(out["uncertainty"])
    np.testing.assert_allclose(unc.values.astype(np.float32), 1 - p.max(0), atol=1e-3)
    lmeta = dict(zarr.open_group(str(path / "labels"), mode="r").attrs)
    assert lmeta["ome"]["labels"] == ["segmentation"]  # the float images are not label images
    assert lmeta["bigseg"]["predictions"]["segmentation"]["probabilities"] == "segmentation_probabilities"
    assert dict(zarr.open_group(out["probabilities"], mode="r").attrs)["bigseg"]["channels"] == ["pore", "cbd", "active"]
    assert not [q for q in (path / "labels").iterdir() if q.name.startswith(".")]  # scratch removed
    with pytest.raises(OutputExistsError, match="`name`"):
        write_prediction(ds, path, progress=False)
    write_prediction(ds, path, overwrite=True, progress=False)
    # other labels over the same name: the probabilities of the ones replaced go with them
    bigseg.save_labels(np.zeros(x.shape, np.uint8), path, name="segmentation", phases=["pore", "cbd", "active"],
                       overwrite=True, progress=False)
    assert sorted(q.name for q in (path / "labels").iterdir() if not q.name.startswith(".")) == \
        ["segmentation", "zarr.json"]
    assert dict(zarr.open_group(str(path / "labels"), mode="r").attrs)["bigseg"]["predictions"] == {}
    # a name that is no plain folder name is refused before anything is touched (was: "" with
    # overwrite deleted the whole labels group), nor one Windows cannot hold (a store made on Linux
    # is copied there)
    for bad in ("", "../x", "a/b", "..", "run:2", "seg?", "a\\b", "seg.", "seg ", "a\tb"):
        with pytest.raises(InputError, match="`name` to be a plain folder name"):
            bigseg.save_labels(np.zeros(x.shape, np.uint8), path, name=bad, phases=["pore", "cbd", "active"],
                               overwrite=True, progress=False)
    assert bigseg.open_volume(path, label="segmentation").shape == x.shape
    # one folder with labels/segmentation on macOS and Windows (was: replaced it, both listed)
    for write in (lambda: bigseg.save_labels(np.zeros(x.shape, np.uint8), path, name="Segmentation",
                                             phases=["pore", "cbd", "active"], overwrite=True, progress=False),
                  lambda: write_prediction(ds, path, name="SEGMENTATION", overwrite=True, progress=False)):
        with pytest.raises(InputError, match="label image 'segmentation' in more than case"):
            write()
    assert sorted(q.name for q in (path / "labels").iterdir() if not q.name.startswith(".")) == \
        ["segmentation", "zarr.json"]


def test_labels_only_and_bad_input(image):
    path, x = image
    ds = predict(da.from_array(x, chunks=7), conv3d_net(), patch=(8, 8, 8))
    reset_worker_stats()
    out = write_prediction(ds, path, name="seg2", levels=2, progress=False)
    assert worker_stats()["patches"] == ds.attrs["n_patches"]  # straight into the label image, once
    assert set(out) == {"labels"}
    assert not (path / "labels" / "seg2_probabilities").exists()
    assert not [p.name for p in (path / "labels").iterdir() if p.name.startswith(".")]  # no scratch left
    labels = bigseg.open_volume(path, label="seg2")
    np.testing.assert_array_equal(labels.values, ds["labels"].values)
    assert labels.attrs["phases"] == ["pore", "cbd", "active"]
    assert bigseg.open_volume(path, label="seg2", level=1).shape == (9, 10, 12)  # the image level's shape (trimmed)
    meta = zarr.open_group(str(path / "labels"), mode="r").attrs["bigseg"]["predictions"]["seg2"]
    assert meta["n_patches"] == ds.attrs["n_patches"]
    with pytest.raises(OutputExistsError, match="seg2"):
        write_prediction(ds, path, name="seg2", progress=False)
    with pytest.raises(InputError, match="`ds`"):
        write_prediction(ds["labels"], path)
    with pytest.raises(InputError, match="`name`"):
        write_prediction(ds, path, name="../x")
    small = predict(x[:5], conv3d_net(), patch=(8, 8, 8))
    with pytest.raises(InputError, match="shape"):
        write_prediction(small, path, name="seg3")


@pytest.mark.parametrize("shape", [(10, 12, 11), (2, 10, 12, 11)], ids=["volume", "series"])
def test_dataset_writes_to_netcdf(tmp_path, shape):
    # every attr netCDF can hold (bool attrs `tta` / `triplanar` made to_netcdf raise)
    import xarray as xr

    x = np.random.default_rng(2).normal(size=shape).astype(np.float32)
    ds = predict(x, conv3d_net(), patch=(8, 8, 8), tta=True, probabilities=True, uncertainty="entropy")
    ds.to_netcdf(tmp_path / "p.nc", engine="h5netcdf")
    back = xr.load_dataset(tmp_path / "p.nc", engine="h5netcdf")
    np.testing.assert_array_equal(back["labels"].values, ds["labels"].values)
    np.testing.assert_array_equal(back["probabilities"].values, ds["probabilities"].values)
    assert back.attrs["tta"] == 1 and back.attrs["triplanar"] == 0 and back.attrs["n_patches"] == ds.attrs["n_patches"]
    assert list(back.phase.values) == ["pore", "cbd", "active"]


def test_probabilities_inside_an_ome_zarr_v04_image_are_v04_too(tmp_path):
    """In another writer's OME-Zarr v0.4 image (zarr v2) the label image was v0.4 but its
    probabilities and uncertainty zarr v3 (OME-Zarr 0.5): two zarr formats in one store, which
    neither spec allows (v2 readers saw a folder without .zgroup)."""
    x = np.random.default_rng(1).normal(size=(10, 12, 14)).astype(np.float32)
    path = tmp_path / "v04.zarr"
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    root.create_array("0", shape=x.shape, chunks=(5, 12, 14), dtype=x.dtype)[:] = x
    root.attrs["multiscales"] = [{"version": "0.4", "axes": [{"name": a, "type": "space", "unit": "micrometer"}
                                                             for a in "zyx"], "datasets": [{"path": "0"}]}]
    ds = predict(bigseg.open_volume(path), conv3d_net(), patch=(8, 8, 8), probabilities=True, uncertainty="margin")
    out = write_prediction(ds, path, progress=False)
    assert not list(path.rglob("zarr.json"))  # nothing of zarr v3 anywhere in the store
    meta = zarr.open_group(out["probabilities"], mode="r")
    assert meta.metadata.zarr_format == 2 and meta.attrs["multiscales"][0]["version"] == "0.4"
    assert [c["label"] for c in meta.attrs["omero"]["channels"]] == ["pore", "cbd", "active"]
    prob = bigseg.open_volume(out["probabilities"])
    np.testing.assert_allclose(prob.values.astype(np.float32), ds["probabilities"].values, atol=1e-3)
    assert zarr.open_group(out["uncertainty"], mode="r").metadata.zarr_format == 2


def test_a_full_disk_while_the_predictions_are_stored_is_said_and_resumes(image, monkeypatch):
    """The float16 scratch of the labels, probabilities and uncertainty (`bigseg segment
    --probabilities`, the pipeline's predict.probabilities) met a full disk as a traceback from
    deep in dask naming a hidden chunk (the command line: exit 1); now said as the predictions',
    and the same write resumes."""
    import errno

    from zarr.storage import _local

    from bigseg.errors import OutputNotWritableError

    path, x = image
    ds = predict(bigseg.open_volume(path), conv3d_net(), patch=(8, 8, 8), probabilities=True)
    put, writes = _local._put, []

    def full_after_some(where, value, *args, **kwargs):
        if "scratch" in str(where) and "/c/" in str(where):
            writes.append(where)
            if len(writes) > 2:
                raise OSError(errno.ENOSPC, "No space left on device", str(where))
        return put(where, value, *args, **kwargs)

    monkeypatch.setattr(_local, "_put", full_after_some)
    with pytest.raises(OutputNotWritableError, match=r"^Expected room to write the predictions in '.*labels' "
                       r"\(predicting labels/segmentation: a float16 scratch of .*\)\. Got: No space left on device "
                       r"\(disk or quota full\)\. The blocks already written are kept: the same command resumes"):
        write_prediction(ds, path, progress=False, resume_key="k")
    assert not (path / "labels" / "segmentation").exists()
    monkeypatch.setattr(_local, "_put", put)
    write_prediction(ds, path, progress=False, resume_key="k")
    np.testing.assert_array_equal(bigseg.open_volume(path, label="segmentation").values,
                                  ds["probabilities"].values.argmax(0))


@pytest.mark.parametrize("kill_at", [1, 2])
def test_a_run_killed_after_placing_the_labels_is_finished_by_the_same_call(image, monkeypatch, kill_at):
    """Killed after the labels were moved into place but before the siblings said whose they are
    (and the prediction was recorded): the same call (same resume_key) was refused as "exists",
    leaving the probabilities and uncertainty nobody's and the hidden float16 scratch behind. Now
    it takes them up from the scratch (the model does not run again) and finishes."""
    from bigseg.infer import _write

    path, x = image
    ds = predict(bigseg.open_volume(path), conv3d_net(), patch=(8, 8, 8), probabilities=True, uncertainty="margin")

    calls = []
    add = _write.add_bigseg_attrs

    def killed(*args, **kwargs):  # the steps after the labels never ran (2: the probabilities' attribute did)
        calls.append(1)
        if len(calls) == kill_at:
            raise KeyboardInterrupt
        add(*args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(_write, "add_bigseg_attrs", killed)
        with pytest.raises(KeyboardInterrupt):
            write_prediction(ds, path, progress=False, resume_key="k")
    ldir = path / "labels"
    assert (ldir / "segmentation").is_dir() and ("probabilities_of" in bigseg.open_volume(
        ldir / "segmentation_probabilities").attrs) == (kill_at == 2)  # the state the kill left
    with pytest.raises(OutputExistsError, match="`name`"):  # another prediction's labels stay refused
        write_prediction(ds, path, progress=False, resume_key="other")
    reset_worker_stats()
    out = write_prediction(ds, path, progress=False, resume_key="k")
    assert worker_stats()["patches"] == 0  # from the scratch
    assert bigseg.open_volume(out["probabilities"]).attrs["probabilities_of"] == "segmentation"
    assert bigseg.open_volume(out["uncertainty"]).attrs["uncertainty_of"] == "segmentation"
    lmeta = dict(zarr.open_group(str(ldir), mode="r").attrs)
    assert lmeta["bigseg"]["predictions"]["segmentation"]["uncertainty"] == "segmentation_uncertainty"
    assert lmeta["ome"]["labels"] == ["segmentation"]
    assert not [q.name for q in ldir.iterdir() if q.name.startswith(".")]  # the scratch is gone
    np.testing.assert_array_equal(bigseg.open_volume(path, label="segmentation").values,
                                  ds["probabilities"].values.argmax(0))


def test_probabilities_and_uncertainty_keep_the_images_place_and_times(tmp_path):
    # a box cut from a scan (its first voxel at z, y, x = 20, 10, 3 um) and a series at 0, 30, 60 min:
    # the float images beside the labels were stored at the origin, numbered 0, 1, 2 (the labels were not)
    x = np.random.default_rng(2).normal(size=(3, 6, 7, 5)).astype(np.float32)
    vol = bigseg.io.make_volume(x, voxel_size=(2.0, 1.0, 1.5), unit="um")
    vol = vol.assign_coords(z=vol.z + 20, y=vol.y + 10, x=vol.x + 3, t=("t", [0.0, 30.0, 60.0], {"units": "min"}))
    path = tmp_path / "crop.ome.zarr"
    bigseg.save_volume(vol, path, chunks=(1, 3, 4, 5), progress=False)
    image = bigseg.open_volume(path)
    ds = predict(image, conv3d_net(), patch=(4, 4, 4), probabilities=True, uncertainty="entropy")
    out = write_prediction(ds, path, progress=False)
    for key in ("labels", "probabilities", "uncertainty"):
        got = bigseg.open_volume(out[key])
        for d in ("t", "z", "y", "x"):
            np.testing.assert_array_equal(got[d].values, image[d].values, err_msg=f"{key} {d}")
        assert got["t"].attrs.get("units") == "min", key

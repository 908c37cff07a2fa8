"""Phase connectivity: percolating / isolated / unknown shares against SciPy on the whole array."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from scipy import ndimage as ndi

import bigseg
from bigseg.errors import InputError
from bigseg.measure import connectivity

_FACES = ndi.generate_binary_structure(3, 1)


def _reference(lab, k, axis):
    """Per phase: (percolating, isolated, unknown, largest, components) from one whole-array label."""
    near = ndi.binary_dilation(lab == 255, _FACES)
    out = []
    for p in range(k):
        cc, n = ndi.label(lab == p, _FACES)
        size = np.bincount(cc.ravel(), minlength=n + 1)[1:]
        ids = np.arange(1, n + 1)
        spans = np.isin(ids, np.take(cc, 0, axis)) & np.isin(ids, np.take(cc, -1, axis))
        edge = np.unique(np.concatenate([np.take(cc, i, a).ravel() for a in range(3) for i in (0, -1)] + [cc[near]]))
        alone = ~np.isin(ids, edge)
        tot = size.sum()
        out.append((size[spans].sum() / tot, size[alone].sum() / tot, size[~spans & ~alone].sum() / tot,
                    size.max() / tot, n))
    return np.array(out)


def _got(ds):
    return np.stack([ds[v].values for v in ("percolating", "isolated", "unknown", "largest", "components")], axis=-1)


@pytest.fixture(scope="module")
def noisy():
    """Random phases with a field of view cut out of a corner: many small components, most crossing blocks."""
    rng = np.random.default_rng(1)
    lab = (rng.random((30, 37, 41)) < 0.45).astype(np.uint8) + (rng.random((30, 37, 41)) < 0.2)
    lab[:, :3, :5] = 255
    return lab


@pytest.mark.parametrize("chunks", [(30, 37, 41), (7, 9, 11), (4, 40, 13)], ids=str)
@pytest.mark.parametrize("axis", ["z", "y", "x"])
def test_matches_whole_array_labelling_for_any_chunking(noisy, chunks, axis):
    ds = connectivity(da.from_array(noisy, chunks=chunks), axis=axis)
    np.testing.assert_allclose(_got(ds), _reference(noisy, 3, "zyx".index(axis)), rtol=1e-12)
    np.testing.assert_array_equal(ds.voxels.values, [(noisy == p).sum() for p in range(3)])
    np.testing.assert_allclose(ds[["percolating", "isolated", "unknown"]].to_array().sum("variable"), 1.0)


def test_electrode_networks_span_and_the_classes_are_what_they_say():
    lab = np.zeros((20, 24, 24), np.uint8)  # pore everywhere
    lab[:, 10:14, 10:14] = 2  # an active pillar from z = 0 to the top
    lab[3:6, 3:6, 3:6] = 1  # a CBD lump inside the pore: isolated
    lab[0:4, 18:22, 18:22] = 1  # a CBD lump on the bottom face: unknown (may continue below)
    ds = connectivity(da.from_array(lab, chunks=(6, 7, 8)), axis="z")
    assert ds.percolating.sel(phase="active") == 1.0
    assert ds.isolated.sel(phase="cbd") == pytest.approx(27 / (27 + 64))
    assert ds.unknown.sel(phase="cbd") == pytest.approx(64 / (27 + 64))
    assert int(ds.components.sel(phase="cbd")) == 2
    across = connectivity(lab, axis="x")  # the pillar does not span x: it reaches z's faces only
    assert across.percolating.sel(phase="active") == 0.0 and across.unknown.sel(phase="active") == 1.0
    assert across.percolating.sel(phase="pore") == 1.0


def test_unlabelled_voxels_are_the_edge_of_the_sample():
    lab = np.full((12, 16, 16), 255, np.uint8)
    lab[:, 2:14, 2:14] = 0
    lab[4:8, 6:10, 6:10] = 2  # inside the sample, clear of its edge: isolated
    lab[4:8, 2:4, 6:8] = 1  # against the edge of the field of view: unknown
    ds = connectivity(da.from_array(lab, chunks=5), axis="z")
    assert ds.isolated.sel(phase="active") == 1.0
    assert ds.unknown.sel(phase="cbd") == 1.0
    assert ds.percolating.sel(phase="pore") == 1.0


def test_series_absent_phase_attrs_and_bad_input():
    a = bigseg.synth.electrode((16, 20, 20), radius=(4, 1), seed=3).values
    b = np.where(a == 1, 0, a).astype(np.uint8)  # no CBD at t = 1
    series = xr.DataArray(np.stack([a, b]), dims=("t", "z", "y", "x"), attrs={"voxel_size": [2, 1, 1], "unit": "nm"})
    ds = connectivity(series.chunk({"z": 7, "y": 9, "x": 20}))
    assert ds.percolating.dims == ("t", "phase")
    np.testing.assert_allclose(_got(ds.isel(t=0)), _reference(a, 3, 0))
    assert np.isnan(ds.percolating.sel(phase="cbd").values[1]) and int(ds.components.sel(phase="cbd")[1]) == 0
    assert ds.attrs["axis"] == "z" and ds.attrs["unit"] == "nm"
    with pytest.raises(InputError, match="`axis`.*'w'"):
        connectivity(a, axis="w")
    with pytest.raises(InputError, match=r"at least 2 voxels along `axis`='z'.*Got shape \(1, "):
        connectivity(a[:1], axis="z")  # one plane: every component read as percolating
    with pytest.raises(InputError, match="labels"):
        connectivity(np.where(a == 2, 7, a).astype(np.uint8))


def test_faces_outside_the_field_of_view_are_said():
    """Along y, a cylindrical field of view (axis z) leaves most of the faces normal to y
    unlabelled: `percolating` read 0 for the pore and nothing said why."""
    import warnings

    lab = bigseg.synth.electrode((16, 24, 24), radius=(4, 1), seed=1).values.copy()
    yy, xx = np.mgrid[:24, :24]
    lab[:, (yy - 11.5) ** 2 + (xx - 11.5) ** 2 > 12 ** 2] = 255
    with pytest.warns(UserWarning, match=r"only 25 % of a face normal to y is labelled"):
        assert connectivity(lab, axis="y").percolating.sel(phase="cbd").item() == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert connectivity(lab, axis="z").percolating.sel(phase="pore").item() > 0.9  # its faces are discs: 79 %


def test_a_narrow_field_of_view_is_not_said_along_its_axis():
    """A cylindrical field of view under half the cross-section (`--fov cylinder --fov-margin 8`
    on 64² slices: 45 %) leaves its faces normal to z labelled as much as the volume: components
    span z there as in a wide one, yet it was warned that `percolating` reads low and told to
    measure along the field of view's axis, the axis it was measured along. Across it, still said."""
    import warnings

    lab = bigseg.synth.electrode((16, 24, 24), radius=(4, 1), seed=1).values.copy()
    yy, xx = np.mgrid[:24, :24]
    lab[:, (yy - 11.5) ** 2 + (xx - 11.5) ** 2 > 7 ** 2] = 255  # 27 % of the cross-section
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert connectivity(lab, axis="z").percolating.sel(phase="pore").item() > 0.9
    with pytest.warns(UserWarning, match=r"only 0 % of a face normal to y is labelled"):
        connectivity(lab, axis="y")


def _bytes_to_client(monkeypatch, module, run):
    """The NumPy bytes the computes of ``module`` return to the client while ``run()`` runs."""
    from bigseg.runtime import _progress

    got = []

    def nbytes(x) -> int:
        if isinstance(x, (tuple, list)):
            return sum(nbytes(v) for v in x)
        return x.nbytes if isinstance(x, np.ndarray) else 0

    def counting(*objs, **kw):
        res = _progress.compute(*objs, **kw)
        got.append(nbytes(res))
        return res

    monkeypatch.setattr(module, "compute", counting)
    out = run()
    return out, sum(got)


@pytest.mark.parametrize("split_false_particles", [False, True])
def test_block_faces_stay_on_the_workers(monkeypatch, split_false_particles):
    """Was: every block sent its six faces of component ids to the client, which matched them
    there: 24 bytes per voxel / chunk edge (1.5 GiB for 2048³ in 128³ chunks, all held at once).
    Now the workers match them and send the pairs of ids that meet (here: one per border)."""
    from bigseg.measure import _connectivity, _particles, particles

    lab = xr.DataArray(da.zeros((64, 64, 64), dtype=np.uint8, chunks=16), dims=("z", "y", "x"))  # 64 blocks, all pore
    faces = 64 * 6 * 16 * 16 * 4  # what the blocks' faces weigh (int32)
    if split_false_particles:
        table, sent = _bytes_to_client(monkeypatch, _particles, lambda: particles(lab, phase="pore", split=False))
        assert len(table) == 1 and table["voxels"].iloc[0] == 64 ** 3
    else:
        ds, sent = _bytes_to_client(monkeypatch, _connectivity, lambda: connectivity(lab))
        assert float(ds["percolating"].sel(phase="pore")) == 1.0 and int(ds["components"].sel(phase="pore")) == 1
    assert sent < faces / 4

"""Confusion matrix, per-phase IoU/Dice/precision/recall, and agreement between segmentations."""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from ..errors import InputError
from ..io._volume import is_step_index, phase_named, reorder_lut, warn_other_grid
from ..kernels.metrics import NBINS, confusion_compact, confusion_counts, histogram, pair_differences
from ..runtime._progress import compute
from ._blockwise import BlockGeometry, block_partials
from ._inputs import Labels, as_labels, check_values, from_stack
from ._metrics import _codes, _common_attrs, _coords, _dims, _stack, labelled_voxels

__all__ = ["confusion", "scores", "agreement"]


def _confusion_block(truth: np.ndarray, pred: np.ndarray, geom: BlockGeometry) -> np.ndarray:
    t, tbad = _codes(truth, geom)
    p, pbad = _codes(pred, geom)
    return np.concatenate([confusion_counts(t, p).ravel(), [tbad, pbad]])


def _pair(truth: Any, pred: Any, phases: Any, *, pred_name: str = "pred",
          pred_phases: list[str] | None = None) -> tuple[Labels, Labels]:
    """The truth and the prediction as :class:`Labels` of one shape. Without ``phases`` their
    label values are matched by phase name: a volume that states no names (no
    ``attrs["phases"]``) takes the other's; two that name the same phases in another order are
    compared phase by phase (the results in ``pred``'s order, see :func:`_confusion_post`);
    two that name other phases are refused (``phases`` compares them by label value).
    ``pred_phases``: the prediction's names as the caller resolved them (:func:`agreement`)."""
    pl = as_labels(pred, name=pred_name, phases=phases if phases is not None else pred_phases)
    tl = as_labels(truth, name="truth", phases=phases)
    if tuple(tl.vol.shape) != tuple(pl.vol.shape):
        raise InputError(f"Expected `{pred_name}` to have the shape of `truth` {tuple(tl.vol.shape)}. "
                         f"Got {tuple(pl.vol.shape)} instead.")
    if phases is None:
        tl, pl = _match_phases(tl, pl, pred_stated=pred_phases is not None)
    warn_other_grid(truth, tl.vol, "truth", pred, pl.vol, pred_name)
    if pl.series and "t" in tl.vol.coords and "t" in pl.vol.coords \
            and not np.array_equal(tl.vol.coords["t"].values, pl.vol.coords["t"].values):
        import warnings

        # scan i against scan i: the results are the prediction's (its times; those of the
        # truth would put each score at another time, beside the prediction's other measures).
        # A truth that states no times (steps 0, 1, ...: a .npy, an array) is at no other time: unsaid
        if not is_step_index(tl.vol.coords["t"]):
            warnings.warn(f"`truth` and `{pred_name}` are series of {pl.vol.sizes['t']} scans at other times (t = "
                          f"{_times(tl)} against {_times(pl)}): compared scan by scan in order, the scores are given "
                          f"at `{pred_name}`'s times.", stacklevel=3)
        tl = dataclasses.replace(tl, vol=tl.vol.assign_coords(t=pl.vol.coords["t"]))
    return tl, pl


def _stated_phases(lab: Labels) -> list[str] | None:
    """The phase names a label volume states itself (``attrs["phases"]``, or a boolean mask's
    background / foreground), else None (its names would be the default's guess)."""
    return lab.phases if lab.vol.dtype == np.bool_ or lab.vol.attrs.get("phases") is not None else None


def same_phases(names: Any, like: Any) -> list[str] | None:
    """``names`` as the same phases as ``like`` (in any order), each by its name in ``like``, a
    name differing in case only taken as its one variant there ("Pore" for "pore",
    :func:`bigseg.io._volume.phase_named`); None if they are other phases."""
    names, like = [str(n) for n in names], [str(n) for n in like]
    renamed = [phase_named(like, n) for n in names]
    return renamed if None not in renamed and sorted(renamed) == sorted(like) else None


def _match_phases(tl: Labels, pl: Labels, *, pred_stated: bool = False) -> tuple[Labels, Labels]:
    """Phase names for two label volumes compared voxel by voxel: one that states none takes the
    other's; stated names must be the same phases (in any order; in other case: the truth takes
    the prediction's names), else InputError."""
    ts, ps = _stated_phases(tl), (pl.phases if pred_stated else _stated_phases(pl))
    if ps is None and ts is not None:
        return tl, dataclasses.replace(pl, phases=list(ts))
    if ts is None:
        return dataclasses.replace(tl, phases=list(pl.phases)), pl
    renamed = same_phases(ts, ps)
    if renamed is None:
        raise InputError(f"Expected `{tl.name}` and `{pl.name}` to name the same phases (their label values are "
                         f"matched by phase name). Got {ts} in `{tl.name}` and {ps} in `{pl.name}`; pass `phases` to "
                         f"compare them by label value anyway.")
    return dataclasses.replace(tl, phases=renamed), pl


def _phase_order(tl: Labels, pl: Labels) -> list[int]:
    """For each of ``pred``'s phases (its label values in order), the truth's label value of that phase."""
    return [tl.phases.index(name) for name in pl.phases]


def _times(lab: Labels) -> str:
    t = lab.vol.coords["t"].values
    return ", ".join(str(v) for v in t[:5]) + (", ..." if len(t) > 5 else "")


def _confusion_graph(tl: Labels, pl: Labels) -> list:
    """Per frame, the lazy :func:`~bigseg.kernels.metrics.confusion_compact` of its blocks'
    summed joint histogram: what :func:`_confusion_post` reads (the whole 256 × 256 histogram,
    512 KiB, came back to the client for every scan of a series: 0.5 GiB for 1000 scans)."""
    rows, k = _phase_order(tl, pl), tl.k
    n = 2 * NBINS + 2 + len(rows) * (k + 1)
    return [block_partials(_confusion_block, t, p, depth=0, nout=NBINS * NBINS + 2, dtype=np.int64).rechunk(-1)
            .map_blocks(confusion_compact, rows=rows, k=k, chunks=((n,),), dtype=np.int64)
            for t, p in zip(tl.frames(), pl.frames())]


def _confusion_post(tl: Labels, pl: Labels, results) -> list[np.ndarray]:
    k = tl.k
    out = []
    stacks = [from_stack(tl), from_stack(pl)]  # (a 0 / 255 mask said once, not at every step)
    for t, vec in enumerate(results):  # (each confusion_compact's: row sums, column sums, 2 counts, rows)
        vec = np.asarray(vec)
        when = t if tl.series else None
        if check_values(vec[:NBINS], k, tl.phases, tl.name, allow_unlabelled=True,
                        out_of_range=int(vec[2 * NBINS]), t=when, stack=stacks[0]):
            stacks[0] = False
        if check_values(vec[NBINS:2 * NBINS], k, pl.phases, pl.name, allow_unlabelled=True,
                        out_of_range=int(vec[2 * NBINS + 1]), t=when, stack=stacks[1]):
            stacks[1] = False
        # (k, k + 1), rows and columns in `pred`'s phase order (the truth's rows matched by
        # name); the last column counts the truth's voxels that the prediction leaves
        # unlabelled (255, e.g. outside its field of view); they count as misses
        out.append(vec[2 * NBINS + 2:].reshape(-1, k + 1))
    return out


def _confusion_counts(tl: Labels, pl: Labels, progress: bool) -> list[np.ndarray]:
    return _confusion_post(tl, pl, compute(*_confusion_graph(tl, pl), desc="confusion", progress=progress))


def confusion(truth: Any, pred: Any, *, phases: Any = None, progress: bool = False) -> xr.DataArray:
    """Confusion matrix of a segmentation against a reference.

    Parameters
    ----------
    truth, pred : label volumes of the same shape, (z, y, x) or (t, z, y, x); ``truth`` voxels
        valued 255 (unlabelled, e.g. sparse annotations) are ignored. Their label values are
        matched by phase name (``attrs["phases"]``): one that names none takes the other's
        names, the same phases in another order are compared phase by phase, other phases are
        refused (InputError).
    phases : phase names by label value for both, compared value by value (default: as above,
        else pore/cbd/active).
    progress : a progress bar on stderr for each pass over the data (default off)

    Returns
    -------
    DataArray ``confusion`` (int64) over ``(truth_phase, pred_phase)`` (and ``t``), both in
    ``pred``'s phase order: voxel counts,
    exact for any chunking. ``attrs["ignored_voxels"]`` counts the unlabelled truth voxels,
    ``attrs["unlabelled_predictions"]`` the labelled truth voxels that ``pred`` leaves unlabelled
    (255, e.g. outside its field of view): they are in no column of the matrix, and
    :func:`scores` counts them as misses.
    """
    tl, pl = _pair(truth, pred, phases)
    counts = _confusion_counts(tl, pl, progress)
    n = int(np.prod(tl.vol.shape))
    cm = xr.DataArray(_stack(tl, [c[:, :-1] for c in counts]), dims=_dims(tl, ("truth_phase", "pred_phase")),
                      coords=_coords(tl, truth_phase=pl.phases, pred_phase=pl.phases), name="confusion")
    cm.attrs.update(units="voxel", long_name="voxels of each truth phase predicted as each phase", ignored_voxels=n - int(sum(c.sum() for c in counts)),
                    unlabelled_predictions=int(sum(c[:, -1].sum() for c in counts)), **_common_attrs(tl))
    return cm


def _scores_from(cm: np.ndarray, phases: list[str]) -> tuple[dict[str, np.ndarray], float, list[str]]:
    """Scores from a (k, k + 1) confusion matrix whose last column holds unlabelled predictions."""
    cm = cm.astype(np.float64)
    tp = np.diag(cm)
    fp = cm[:, :-1].sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    notes = []

    def ratio(num, den):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)

    out = {
        "iou": ratio(tp, tp + fp + fn),
        "dice": ratio(2 * tp, 2 * tp + fp + fn),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "support": cm.sum(axis=1).astype(np.int64),
    }
    for i, name in enumerate(phases):
        if tp[i] + fp[i] + fn[i] == 0:
            notes.append(f"phase {name!r} is absent from truth and prediction: iou, dice, precision, recall are NaN")
        elif tp[i] + fp[i] == 0:
            notes.append(f"phase {name!r} is never predicted: precision is NaN")
        elif tp[i] + fn[i] == 0:
            notes.append(f"phase {name!r} is absent from the truth: recall is NaN")
    total = cm.sum()
    acc = float(tp.sum() / total) if total > 0 else float("nan")
    if total == 0:
        notes.append("no labelled truth voxels: accuracy is NaN")
    return out, acc, notes


def scores(truth: Any, pred: Any, *, phases: Any = None, progress: bool = False) -> xr.Dataset:
    """Per-phase IoU, Dice, precision and recall, and the overall accuracy, from one confusion matrix.

    ``iou = TP / (TP + FP + FN)``, ``dice = 2TP / (2TP + FP + FN)``, ``precision = TP / (TP + FP)``,
    ``recall = TP / (TP + FN)``, ``accuracy = trace / labelled voxels`` (of the truth; those
    valued 255 are ignored). Truth voxels that ``pred`` leaves unlabelled (255, e.g. outside
    its field of view) count as misses (false negatives). Accuracy alone hides the
    majority-class trap (a volume that is 60 % active material scores 0.6 by predicting only
    active), so the per-phase scores come with it. A phase absent from both truth and prediction
    gets NaN and a line in ``attrs["note"]`` instead of an error. Phases are matched by name, as
    in :func:`confusion`.

    Parameters
    ----------
    truth, pred, phases, progress : as for :func:`confusion` (the reference and the segmentation
        scored, label volumes of one shape; ``phases`` default None: matched by name; progress
        bars default off).

    Returns
    -------
    Dataset over ``phase`` (``pred``'s phase order; and ``t``): ``iou``, ``dice``, ``precision``,
    ``recall`` (float64, dimensionless), ``support`` (truth voxels of the phase) and the scalar
    (or per-``t``) ``accuracy``.

    Examples
    --------
    >>> from bigseg import measure, synth
    >>> truth = synth.electrode((32, 32, 32), radius=(5, 1), chunks=16, voxel_size=50, unit="nm")
    >>> s = measure.scores(truth, truth)  # a perfect segmentation
    >>> list(s.data_vars)
    ['iou', 'dice', 'precision', 'recall', 'support', 'accuracy']
    >>> s.iou.values.tolist(), float(s.accuracy)
    ([1.0, 1.0, 1.0], 1.0)
    >>> pred = truth.where(truth != 1, 0)  # CBD read as pore
    >>> dict(zip(s.phase.values.tolist(), measure.scores(truth, pred).iou.round(2).values.tolist()))
    {'pore': 0.7, 'cbd': 0.0, 'active': 1.0}
    """
    tl, pl = _pair(truth, pred, phases)
    return _scores_dataset(dataclasses.replace(tl, phases=pl.phases), _confusion_counts(tl, pl, progress))


# each score's attrs (units, long_name): one table for scores and agreement
_SCORE_ATTRS = {
    "iou": {"units": "1", "long_name": "intersection over union with the truth, TP / (TP + FP + FN)"},
    "dice": {"units": "1", "long_name": "Dice coefficient with the truth, 2TP / (2TP + FP + FN)"},
    "precision": {"units": "1", "long_name": "share of the voxels predicted as the phase that are it, TP / (TP + FP)"},
    "recall": {"units": "1", "long_name": "share of the phase's truth voxels predicted as it, TP / (TP + FN)"},
    "support": {"units": "voxel", "long_name": "labelled truth voxels of the phase, the voxels scored"},
    "accuracy": {"units": "1", "long_name": "share of the labelled truth voxels predicted right"},
}


def _scores_dataset(tl: Labels, counts: list[np.ndarray]) -> xr.Dataset:
    per = [_scores_from(c, tl.phases) for c in counts]
    dims = _dims(tl, ("phase",))
    data = {key: (dims, _stack(tl, [p[0][key] for p in per]), dict(_SCORE_ATTRS[key]))
            for key in ("iou", "dice", "precision", "recall", "support")}
    acc = [p[1] for p in per]
    data["accuracy"] = (("t",) if tl.series else (), np.array(acc) if tl.series else acc[0], dict(_SCORE_ATTRS["accuracy"]))
    ds = xr.Dataset(data, coords=_coords(tl, phase=tl.phases))
    notes = sorted({n for p in per for n in p[2]})
    ds.attrs.update(**_common_attrs(tl))
    if notes:
        ds.attrs["note"] = "; ".join(notes)
    return ds


def _mean_over_pairs(diff: np.ndarray) -> np.ndarray:
    """Mean of the pairs' differing fractions, leaving out pairs without a labelled voxel in
    common (NaN; all of them NaN: NaN)."""
    n = np.sum(~np.isnan(diff), axis=-1)
    total = np.nansum(diff, axis=-1)
    return np.where(n > 0, total / np.maximum(n, 1), np.nan)


# --------------------------------------------------------------------------------------------
# agreement between several segmentations
# --------------------------------------------------------------------------------------------
def _agreement_block(*blocks_and_geom, luts: tuple = ()) -> np.ndarray:
    """``luts``: per segmentation, None or a 256-entry table taking its label values to the
    first segmentation's (same phases named in another order)."""
    *blocks, geom = blocks_and_geom
    codes = []
    hists = []
    bads = []
    for i, b in enumerate(blocks):
        c, nbad = _codes(b, geom)
        if luts and luts[i] is not None:
            c = luts[i][c]
        codes.append(c)
        hists.append(histogram(c))
        bads.append(nbad)
    return np.concatenate([np.concatenate(hists), bads, pair_differences(*codes)])


def segmentation_coord(values: Any) -> xr.Variable:
    """The ``segmentation`` coordinate of :func:`agreement`: the segmentations' numbers in the
    order given (or their names, as ``bigseg compare`` gives them), with its ``long_name``."""
    return xr.Variable("segmentation", list(values) if not isinstance(values, np.ndarray) else values,
                       {"long_name": "segmentation (in the order given)"})


def agreement(segmentations: Sequence[Any], *, truth: Any = None, phases: Any = None,
              progress: bool = False) -> xr.Dataset:
    """How much several segmentations of the same image agree (user or method variance).

    Following the ML-vs-threshold segmentation study's two metrics: the standard deviation of
    each phase's volume fraction across the segmentations (sample standard deviation, n - 1)
    and the percentage of voxels that differ between two segmentations, averaged over all pairs.

    Parameters
    ----------
    segmentations : two or more label volumes of the same shape (3D, or 4D series); voxels
        valued 255 (unlabelled, e.g. outside a field of view) are left out: each fraction is
        over that segmentation's labelled voxels, each pair's difference over the voxels both
        label.
    truth : a reference label volume of the same shape: adds every segmentation's
        :func:`scores` against it, from the same pass over the data (each block of the truth is
        read once for all of them); its phases are matched to theirs by name.
    phases : names by label value for all of them (default: the names the segmentations state,
        which must be the same phases, in any order: label values are matched by phase name and
        the results are in the first stating one's order; those that state none take them, else
        the truth's, else pore/cbd/active).
    progress : a progress bar on stderr for each pass over the data (default off)

    Returns
    -------
    Dataset with ``volume_fraction`` (segmentation, phase), ``fraction_mean`` and
    ``fraction_std`` (phase), ``differing_fraction`` (pair; the fraction of voxels whose labels
    differ, 0-1; NaN for a pair without a labelled voxel in common) with ``pair_a``/``pair_b``
    coordinates, and ``mean_differing_fraction`` (the mean over the pairs that have one); with ``truth`` also ``iou``, ``dice``, ``precision``,
    ``recall`` (segmentation, phase), ``accuracy`` (segmentation) and ``support`` (phase: the
    truth's labelled voxels of each phase, those scored; few for a sparse truth); a ``t``
    dimension for series.
    """
    if isinstance(segmentations, (str, bytes)) or not isinstance(segmentations, Sequence) or len(segmentations) < 2:
        raise InputError("Expected `segmentations` to be a list of at least two label volumes. "
                         f"Got {type(segmentations).__name__} of length "
                         f"{len(segmentations) if hasattr(segmentations, '__len__') else '?'} instead.")
    labs = [as_labels(s, name=f"segmentations[{i}]", phases=phases) for i, s in enumerate(segmentations)]
    own = [lab.phases for lab in labs]  # each one's names, in its own label order
    if phases is None:  # label values are matched by phase name, as scores does: stated names must agree
        stated = [(i, names) for i, lab in enumerate(labs) if (names := _stated_phases(lab)) is not None]
        for j, (i, names) in enumerate(stated[1:], 1):
            renamed = same_phases(names, stated[0][1])  # (in other case too: "Pore" is pore)
            if renamed is None:
                raise InputError(f"Expected the segmentations to name the same phases (their label values are "
                                 f"matched by phase name). Got {stated[0][1]} in `segmentations[{stated[0][0]}]` and "
                                 f"{names} in `segmentations[{i}]`; pass `phases` to compare them by label value "
                                 f"anyway.")
            stated[j] = (i, renamed)
        # those that state none take the names the others state, else the truth's (as scores does)
        named = stated[0][1] if stated else None
        if named is None and truth is not None:
            named = _stated_phases(as_labels(truth, name="truth"))
        if named is not None:
            stated_at = dict(stated)
            own = [list(stated_at.get(i, named)) for i in range(len(labs))]
            labs = [dataclasses.replace(lab, phases=list(named)) for lab in labs]
    # a segmentation naming the phases in another order: its values read in the first one's order
    luts = tuple(None if names == labs[0].phases else reorder_lut(names, labs[0].phases) for names in own)
    ref = labs[0]
    for i, lab in enumerate(labs[1:], 1):
        if tuple(lab.vol.shape) != tuple(ref.vol.shape):
            raise InputError(f"Expected `segmentations[{i}]` to have the shape of `segmentations[0]` "
                             f"{tuple(ref.vol.shape)}. Got {tuple(lab.vol.shape)} instead.")
        warn_other_grid(segmentations[0], ref.vol, "segmentations[0]", segmentations[i], lab.vol, f"segmentations[{i}]",
                         stacklevel=3)
    s = len(labs)
    k = ref.k
    npair = s * (s - 1) // 2
    nout = s * NBINS + s + 2 * npair
    frames = list(zip(*[lab.frames() for lab in labs]))
    block = functools.partial(_agreement_block, luts=luts) if any(lut is not None for lut in luts) else _agreement_block
    parts = [block_partials(block, *fr, depth=0, nout=nout, dtype=np.int64) for fr in frames]
    # the truth's label values matched to the segmentations' by phase name (or all by `phases`)
    pairs_t = [_pair(truth, seg, phases, pred_name=f"segmentations[{i}]", pred_phases=own[i])
               for i, seg in enumerate(segmentations)] if truth is not None else []
    conf = [g for tl, pl in pairs_t for g in _confusion_graph(tl, pl)]
    results = compute(*parts, *conf, desc="agreement", progress=progress)
    fr_l, diff_l = [], []
    for t, vec in enumerate(results[:len(parts)]):
        vec = np.asarray(vec)
        hists = vec[: s * NBINS].reshape(s, NBINS)
        for i in range(s):
            check_values(hists[i], k, ref.phases, f"segmentations[{i}]", allow_unlabelled=True,
                         out_of_range=int(vec[s * NBINS + i]), t=t if ref.series else None)
            labelled_voxels(labs[i], {"hist": hists[i]}, t)  # raises if none
        fr_l.append(hists[:, :k] / hists[:, :k].sum(axis=1, keepdims=True))
        differ, both = vec[s * NBINS + s:s * NBINS + s + npair], vec[s * NBINS + s + npair:]
        with np.errstate(divide="ignore", invalid="ignore"):
            diff_l.append(np.where(both > 0, differ / np.maximum(both, 1), np.nan))
    pairs = list(itertools.combinations(range(s), 2))
    fr = _stack(ref, fr_l)
    diff = _stack(ref, diff_l)
    fdims = _dims(ref, ("segmentation", "phase"))
    ds = xr.Dataset(
        {
            "volume_fraction": (fdims, fr, {"units": "1", "long_name": "volume fraction of the phase in each segmentation"}),
            "fraction_mean": (_dims(ref, ("phase",)), fr.mean(axis=-2),
                              {"units": "1", "long_name": "mean volume fraction across segmentations"}),
            "fraction_std": (_dims(ref, ("phase",)), fr.std(axis=-2, ddof=1),
                             {"units": "1", "long_name": "sample standard deviation (n - 1) across segmentations"}),
            "differing_fraction": (_dims(ref, ("pair",)), diff,
                                   {"units": "1", "long_name": "fraction of voxels labelled differently"}),
            "mean_differing_fraction": (_dims(ref, ()), _mean_over_pairs(diff),
                                        {"units": "1", "long_name": "mean over the pairs that label a voxel in common"}),
        },
        coords={**_coords(ref, phase=ref.phases), "segmentation": segmentation_coord(np.arange(s)),
                "pair_a": ("pair", [a for a, _ in pairs], {"long_name": "first segmentation of the pair (its number)"}),
                "pair_b": ("pair", [b for _, b in pairs], {"long_name": "second segmentation of the pair (its number)"})},
    )
    if pairs_t:  # per segmentation, its scores against the truth
        m = len(frames)
        per = [_scores_dataset(dataclasses.replace(tl, phases=pl.phases),
                               _confusion_post(tl, pl, results[len(parts) + i * m:len(parts) + (i + 1) * m]))
               .sel(phase=ref.phases) for i, (tl, pl) in enumerate(pairs_t)]
        sc = xr.concat([p.drop_vars("support") for p in per], dim="segmentation", combine_attrs="drop")
        for name in ("iou", "dice", "precision", "recall", "accuracy"):
            lead = ("t",) if ref.series else ()
            ds[name] = sc[name].transpose(*lead, "segmentation", ...).assign_coords(
                segmentation=segmentation_coord(np.arange(s)))
            ds[name].attrs = dict(_SCORE_ATTRS[name])
        # the truth's labelled voxels by phase: the same for every segmentation (a sparse truth scores few)
        ds["support"] = per[0]["support"]
    ds.attrs.update(segmentations=s, **_common_attrs(ref))
    return ds


from __future__ import annotations

import os
import sys
import warnings

import numpy as np
import pytest
import torch
import xarray as xr
from torch.nn import functional as F

import bigseg
from bigseg import models
from bigseg.errors import InputError, ModelError, OutputNotWritableError
from bigseg.train import Augment, dice_ce_loss, make_pair
from bigseg.train._data import PatchSampler, split_validation

TINY = dict(kernels=4, growth=1.0)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def pair():
    """A small synthetic (image, labels) and sparse labels: 5 z-slices, ~40 % of each."""
    img, lab = make_pair((12, 48, 48), electrode={"seed": 5, "radius": (6, 1.5)}, preset="nano-ct-absorption", physics={}, seed=5)
    sparse = np.full_like(lab, 255)
    for z in (1, 3, 6, 8, 10):
        sparse[z, 8:40, 4:34] = lab[z, 8:40, 4:34]
    return img, lab, sparse


# ----------------------------------------------------------------------------------------- loss


def test_loss_ignores_unlabelled_voxels_gradient_check():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 9, 11, generator=g, requires_grad=True)
    target = torch.randint(0, 3, (2, 9, 11), generator=g)
    mask = torch.rand(2, 9, 11, generator=g) < 0.3
    target[mask] = 255
    loss = dice_ce_loss(logits, target)
    loss.backward()
    grad = logits.grad
    assert grad is not None
    # exactly zero gradient at unlabelled voxels, non-zero somewhere at labelled ones
    assert torch.count_nonzero(grad.permute(0, 2, 3, 1)[mask]) == 0
    assert grad.permute(0, 2, 3, 1)[~mask].abs().sum() > 0
    # changing the logits of unlabelled voxels leaves the loss unchanged
    other = logits.detach().clone()
    other.permute(0, 2, 3, 1)[mask] = torch.randn(int(mask.sum()), 3, generator=g) * 50
    assert torch.allclose(dice_ce_loss(other, target), loss.detach(), atol=1e-6)


def test_loss_terms_match_references():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 3, 6, 7, 5, generator=g)
    target = torch.randint(0, 3, (3, 6, 7, 5), generator=g)
    target[:, :2] = 255
    ce = dice_ce_loss(logits, target, dice_weight=0.0)
    assert torch.allclose(ce, F.cross_entropy(logits, target, ignore_index=255), atol=1e-6)
    # soft Dice on a perfect one-hot "prediction" is ~0; on a uniform one it is clearly > 0
    perfect = F.one_hot(torch.where(target == 255, 0, target), 3).movedim(-1, 1).float() * 200
    assert dice_ce_loss(perfect, target, ce_weight=0.0) < 1e-3
    assert dice_ce_loss(torch.zeros_like(logits), target, ce_weight=0.0) > 0.3


def test_loss_without_labels_is_zero_and_connected():
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    loss = dice_ce_loss(logits, torch.full((1, 4, 4), 255))
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert torch.count_nonzero(logits.grad) == 0


# ----------------------------------------------------------------------------------------- data


def test_augment_keeps_labels_aligned():
    g = torch.Generator().manual_seed(3)
    y = torch.randint(0, 3, (6, 16, 16), generator=g)
    x = y[:, None].float()
    geo = Augment.none()
    geo.flip, geo.rot90 = 0.5, 0.9
    xa, ya = geo(x, y, g)
    assert torch.equal(xa[:, 0], ya.float())
    assert not torch.equal(ya, y)  # something was flipped/rotated
    # photometric augmentation changes the image, never the labels
    xb, yb = Augment(flip=0, rot90=0, noise=1.0, rings=1.0, drift=1.0)(x, y, g)
    assert torch.equal(yb, y) and not torch.allclose(xb, x)
    # 3D patches too
    y3 = torch.randint(0, 3, (2, 5, 8, 8), generator=g)
    xa3, ya3 = geo(y3[:, None].float(), y3, g)
    assert torch.equal(xa3[:, 0], ya3.float())


def test_split_validation_slices_and_single_slice():
    lab = np.full((10, 8, 8), 255, np.uint8)
    for z in (1, 3, 5, 7, 9):
        lab[z, 2:6, 2:6] = z % 3
    tr, va = split_validation(lab, axis=0, val_fraction=0.2, seed=0)
    held = [z for z in range(10) if (va[z] != 255).any()]
    assert len(held) == 1 and (tr[held[0]] == 255).all()
    np.testing.assert_array_equal(np.where(va != 255, va, tr), lab)
    one = np.full((4, 10, 6), 255, np.uint8)
    one[2] = 1
    tr, va = split_validation(one, axis=0, val_fraction=0.3, seed=0)
    assert (tr != 255).sum() > 0 and (va != 255).sum() > 0
    assert ((tr != 255) & (va != 255)).sum() == 0 and ((tr != 255) | (va != 255)).sum() == (one != 255).sum()
    # along another axis
    tr, va = split_validation(np.moveaxis(lab, 0, 2), axis=2, val_fraction=0.2, seed=0)
    assert ((va != 255).any((0, 1))).sum() == 1


def test_patch_sampler_centres_on_labels_class_balanced(pair):
    img, lab, sparse = pair
    s = PatchSampler(img, sparse, (16, 16), axis=0, n_classes=3)
    x, y = s.sample(60, np.random.default_rng(0))
    assert x.shape == (60, 1, 16, 16) and y.shape == (60, 16, 16)
    assert ((y != 255).reshape(60, -1).any(1)).all()
    centre = y[:, 8, 8]
    # centre voxels are labelled unless jittered off the annotation; cbd is well represented
    counts = np.bincount(centre[centre != 255], minlength=3)
    assert counts[1] >= 10
    s3 = PatchSampler(img, sparse, (8, 16, 16), n_classes=3)
    x3, y3 = s3.sample(4, np.random.default_rng(1))
    assert x3.shape == (4, 1, 8, 16, 16) and ((y3 != 255).reshape(4, -1).any(1)).all()


# ----------------------------------------------------------------------------------------- training


def _batch_loss(model, x, y):
    model.eval()
    with torch.no_grad():
        return float(dice_ce_loss(model(torch.from_numpy(x)), torch.from_numpy(y)))


def test_a_few_steps_lower_the_loss(pair):
    img, lab, sparse = pair
    s = PatchSampler(img, sparse, (32, 32), n_classes=3)
    x, y = s.sample(16, np.random.default_rng(7))
    torch.manual_seed(0)
    init = models.create("lrcsnet", patch=(32, 32), kernels=8, growth=1.0)
    before = _batch_loss(init, x, y)
    m = bigseg.train(img, sparse, init=init, epochs=3, steps_per_epoch=20, lr=1e-2, lr_decay=0.5, batch_size=4,
                     augment=False, progress=False, seed=1)
    after = _batch_loss(m, x, y)
    assert after < 0.85 * before
    h = m.provenance["history"]
    assert len(h) == 3 and h[-1]["loss"] < h[0]["loss"]
    assert h[1]["lr"] == pytest.approx(1e-2 * 0.5)  # lr * lr_decay**epoch
    assert set(h[0]["val_iou"]) == {"pore", "cbd", "active"}


def test_fine_tuning_starts_from_given_weights(pair, tmp_path):
    img, lab, sparse = pair
    torch.manual_seed(11)
    init = models.create("lrcsnet", patch=(32, 32), **TINY)
    ref = {k: v.clone() for k, v in init.state_dict().items()}
    m = bigseg.train(img, sparse, init=init, epochs=1, steps_per_epoch=1, lr=1e-12, batch_size=2, progress=False, seed=3)
    for name, p in m.named_parameters():
        torch.testing.assert_close(p.detach(), ref[name], atol=1e-7, rtol=0)
    # the given model is untouched, the result is another object with provenance linking it
    for k, v in init.state_dict().items():
        assert torch.equal(v, ref[k])
    assert m is not init and m.provenance["init"] == init.checkpoint_key()
    assert m.provenance["parent"] is None  # a fresh network has no training history to carry
    # fine-tuning a trained model carries its provenance along (the lineage), through a save/load
    m2 = bigseg.train(img, sparse, init=m, epochs=1, steps_per_epoch=1, lr=1e-12, batch_size=2, progress=False, seed=4)
    assert m2.provenance["parent"]["seed"] == 3 and m2.provenance["parent"]["steps"] == m.provenance["steps"]
    assert m2.provenance["init"] == m.checkpoint_key()
    models.save(m2, tmp_path / "m2.pt")
    assert models.load(tmp_path / "m2.pt").provenance["parent"] == m2.provenance["parent"]
    # a model trained from scratch with the same seed does not start there
    scratch = bigseg.train(img, sparse, arch="lrcsnet", arch_kwargs=TINY, patch=(32, 32), epochs=1, steps_per_epoch=1,
                           lr=1e-12, batch_size=2, progress=False, seed=3)
    assert not torch.allclose(scratch.net.enc1.weight, ref["net.enc1.weight"])
    with pytest.raises(InputError, match="arch"):
        bigseg.train(img, sparse, init=init, arch="unet3d", epochs=1)
    # labels of some phases only: said (nothing teaches the model the others)
    no_active = np.where(sparse == 2, 255, sparse).astype(np.uint8)
    with pytest.warns(UserWarning, match="no voxel of active: the model learns nothing of it beyond what the initial"):
        bigseg.train(img, no_active, init=m, epochs=1, steps_per_epoch=1, lr=1e-12, batch_size=2, progress=False)


def test_fine_tuning_labels_with_the_init_phases_in_another_order(pair, tmp_path):
    # each of the init's output channels keeps the phase it means: the labels are re-indexed to
    # the init's order (they were trained on under the init's channels, renamed: pore <-> active)
    img, lab, sparse = pair
    torch.manual_seed(11)
    init = models.create("lrcsnet", patch=(32, 32), **TINY)  # pore, cbd, active
    swapped = xr.DataArray(np.where(sparse == 255, 255, 2 - sparse).astype(np.uint8), dims=("z", "y", "x"),
                           attrs={"phases": ["active", "cbd", "pore"]})
    same = bigseg.train(img, sparse, init=init, epochs=1, steps_per_epoch=3, lr=1e-3, batch_size=2, progress=False,
                        seed=3, augment=False)
    other = bigseg.train(img, swapped, init=init, epochs=1, steps_per_epoch=3, lr=1e-3, batch_size=2, progress=False,
                         seed=3, augment=False)
    assert other.phases == init.phases == ["pore", "cbd", "active"]
    for (name, p), q in zip(same.named_parameters(), other.parameters()):  # the same training, step for step
        torch.testing.assert_close(p, q, msg=name)
    assert other.provenance["scores"] == same.provenance["scores"]


def test_fine_tuning_labels_naming_the_init_phases_in_other_case(pair):
    """Labels naming "Pore", "CBD", "Active" fine-tune a model of "pore", "cbd", "active" as those
    phases, under its own names (they renamed its channels, and in another order trained them as
    the phases they were not: its 'pore' channel as "Active")."""
    img, _, sparse = pair
    torch.manual_seed(11)
    init = models.create("lrcsnet", patch=(32, 32), **TINY)  # pore, cbd, active
    run = dict(init=init, epochs=1, steps_per_epoch=2, lr=1e-3, batch_size=2, progress=False, seed=3, augment=False,
               val_fraction=0)
    same = bigseg.train(img, sparse, **run)
    swapped = xr.DataArray(np.where(sparse == 255, 255, 2 - sparse).astype(np.uint8), dims=("z", "y", "x"),
                           attrs={"phases": ["Active", "CBD", "Pore"]})
    other = bigseg.train(img, swapped, **run)
    assert other.phases == init.phases == ["pore", "cbd", "active"]
    for (name, p), q in zip(same.named_parameters(), other.parameters()):  # the same training, step for step
        torch.testing.assert_close(p, q, msg=name)


def test_fine_tuning_phases_in_other_case_keep_the_init_names_and_are_checked_as_its(pair, monkeypatch):
    img, _, sparse = pair
    init = models.create("lrcsnet", patch=(32, 32), **TINY)  # pore, cbd, active
    from bigseg.train._train import check_init_phases

    assert check_init_phases(init, ["Pore", "CBD", "Active"]) == ["pore", "cbd", "active"]
    assert check_init_phases(init, ["PORE", "CBD", "crack"]) == ["pore", "cbd", "crack"]  # its own name kept
    assert check_init_phases(init, ["Pore", "CBD", "Active"], reindex=False) == ["pore", "cbd", "active"]
    _refuse_loading(monkeypatch)
    partial = xr.DataArray(sparse, dims=("z", "y", "x"), attrs={"phases": ["Pore", "Active", "crack"]})
    with pytest.raises(ModelError, match=r"`init` model's phases \['pore', 'cbd', 'active'\].*Got \['Pore', 'Active', "
                                         r"'crack'\]: 'Active' at value 1 where the `init` model has 'active' at 2"):
        bigseg.train(img, partial, init=init, epochs=1)
    with pytest.raises(ModelError, match=r"Got \['CBD', 'Pore', 'Active'\]: 'CBD' at value 0 where the `init` model "
                                         r"has 'cbd' at 1"):  # the generator's labels are pore, cbd, active
        bigseg.train(synthetic=True, init=init, phases=["CBD", "Pore", "Active"], epochs=1)


def test_a_synthetic_fine_tune_names_its_phases_as_the_init_does(monkeypatch):
    """A synthetic fine-tune given the init's phases in other case ("Pore", "CBD", "Active") gives
    its model the init's names, as a fine-tune on labels does."""
    from bigseg.train import _synthetic

    init = models.create("lrcsnet", patch=(32, 32), **TINY)  # pore, cbd, active
    seen = []

    class Stop(Exception):
        pass

    def prepare(opts, phases, *args, **kwargs):
        seen.append(list(phases))
        raise Stop

    monkeypatch.setattr(_synthetic, "prepare_model", prepare)
    monkeypatch.setattr(_synthetic, "make_pair", lambda *a, **k: (None, None))  # no validation volume made
    with pytest.raises(Stop):
        bigseg.train(synthetic=True, init=init, phases=["Pore", "CBD", "Active"], epochs=1, progress=False)
    assert seen == [["pore", "cbd", "active"]]


def test_checkpoints_of_a_fine_tune_carry_this_run(pair, tmp_path):
    img, lab, sparse = pair
    parent = bigseg.train(img, sparse, arch_kwargs=TINY, patch=(32, 32), epochs=1, steps_per_epoch=1, batch_size=2,
                          progress=False, seed=3)
    m = bigseg.train(img, sparse, init=parent, epochs=2, steps_per_epoch=1, batch_size=2, progress=False, seed=4,
                     checkpoint_dir=str(tmp_path / "ck"))
    first = models.load(tmp_path / "ck" / "epoch_001.pt").provenance
    assert first["in_progress"] and first["epoch"] == 1 and first["seed"] == 4  # was the parent's own provenance
    assert first["init"] == parent.checkpoint_key() and first["parent"]["seed"] == 3
    assert "history" not in first and m.provenance["epochs"] == 2 and "in_progress" not in m.provenance
    # a checkpoint folder that cannot be made is said before the training (a file in the way)
    (tmp_path / "afile").write_text("")
    with pytest.raises(OutputNotWritableError, match="`checkpoint_dir`"):
        bigseg.train(img, sparse, arch_kwargs=TINY, patch=(32, 32), epochs=1, checkpoint_dir=str(tmp_path / "afile"))
    with pytest.raises(InputError, match="`fov_margin` only with `fov`. Got fov_margin=2"):  # was ignored
        bigseg.train(img, sparse, epochs=1, fov_margin=2)


def test_unet3d_checkpoints_and_round_trip(pair, tmp_path):
    img, lab, sparse = pair
    m = bigseg.train(img, sparse, arch="unet3d", arch_kwargs={"channels": (4, 8)}, patch=(8, 16, 16), epochs=2,
                     steps_per_epoch=2, batch_size=2, lr=1e-3, checkpoint_dir=str(tmp_path / "ck"), progress=False)
    files = sorted(os.listdir(tmp_path / "ck"))
    assert files[:2] == ["best.pt", "epoch_001.pt"] and "epoch_002.pt" in files
    best = models.load(tmp_path / "ck" / "best.pt")
    assert best.arch == "unet3d" and best.patch == (8, 16, 16)
    x = torch.from_numpy(img[None, None, :8, :16, :16].copy())
    p = models.save(m, tmp_path / "m.pt")
    with torch.no_grad():
        assert torch.equal(models.load(p)(x), m(x))
    prov = models.load(p).provenance
    for key in ("data", "seed", "epochs", "scores", "hardware", "duration_s", "history"):
        assert key in prov
    assert prov["data"]["labelled_slices"] == 5
    # the voxels it learnt shapes at (a 3D model applied to other voxels sees other shapes): was not kept
    assert prov["data"]["voxel_size"] == [1.0, 1.0, 1.0] and prov["data"]["unit"] == "voxel"
    scan = xr.DataArray(img, dims=("z", "y", "x"), attrs={"voxel_size": (100.0, 50.0, 50.0), "unit": "nm"})
    m = bigseg.train(scan, sparse, init=m, epochs=1, steps_per_epoch=1, batch_size=2, progress=False)
    assert m.provenance["data"]["voxel_size"] == [100.0, 50.0, 50.0] and m.provenance["data"]["unit"] == "nm"


def test_explicit_validation_pair_and_early_stopping(pair):
    img, lab, sparse = pair
    m = bigseg.train(img, sparse, validation=(img, lab), arch_kwargs=TINY, patch=(32, 32), epochs=6, steps_per_epoch=1,
                     lr=1e-12, lr_decay=1.0, patience=1, progress=False)
    assert m.provenance["stopped_early"] and m.provenance["epochs"] < 6
    assert m.provenance["data"]["validation"] == "explicit"


def test_bad_input_is_refused_before_work(pair):
    img, lab, sparse = pair
    bad = sparse.copy()
    bad[0, 0, 0] = 7
    with pytest.raises(InputError, match=r"`labels` values 0, 1, 2 or 255 \(unlabelled\). Got \[7\]"):
        bigseg.train(img, bad, epochs=1)
    with pytest.raises(InputError, match="same shape"):
        bigseg.train(img[:5], sparse, epochs=1)
    with pytest.raises(InputError, match="labelled voxels"):
        bigseg.train(img, np.full_like(sparse, 255), epochs=1)
    with pytest.raises(InputError, match="lr_decay"):
        bigseg.train(img, sparse, lr_decay=1.5)
    with pytest.raises(InputError, match="arch"):
        bigseg.train(img, sparse, arch="segformer")
    with pytest.raises(InputError, match="amp"):
        bigseg.train(img, sparse, amp="fp16", device="cpu")
    with pytest.raises(InputError, match=r"`device` to be 'cpu', 'cuda' or 'cuda:N'. Got 'gpu'"):
        bigseg.train(img, sparse, device="gpu")
    import torch

    if not torch.cuda.is_available():  # as inference says it
        with pytest.raises(InputError, match="`device` 'cuda:1' only where PyTorch sees a CUDA GPU"):
            bigseg.train(img, sparse, device="cuda:1")
    with pytest.raises(InputError, match="patch"):
        bigseg.train(img, sparse, patch=(4, 4))
    too_big = tuple(n + 8 for n in img.shape[1:])  # would train mostly on padding
    with pytest.raises(InputError, match=r"`patch` to fit inside the planes across `axis`, \(%d, %d\)\. Got \(%d, %d\) "
                                         r"instead: pass patch=\(" % (*img.shape[1:], *too_big)):
        bigseg.train(img, sparse, patch=too_big)
    with pytest.raises(InputError, match=r"`patch` to fit inside the image.*too small to train on"):
        bigseg.train(img[:4], sparse[:4], arch="unet3d", patch=(16, 16, 16))
    with pytest.raises(InputError, match=r"`image` of at least 8 voxels .*Got \(4, 6\): too small"):
        bigseg.train(img[:, :4, :6], sparse[:, :4, :6])  # no patch given: the default one is not named
    with pytest.raises(ModelError, match="init"):
        bigseg.train(img, sparse, init=3)
    with pytest.raises(InputError, match="None"):
        bigseg.train(img, sparse, synthetic=True)
    exported = np.where(sparse == 255, 0, sparse.astype(np.int32) + 1)  # napari/ilastik: 0 = not annotated
    with pytest.raises(InputError, match=r"Got \[3\] instead; if 0 marks the unannotated voxels.*unlabelled=0"):
        bigseg.train(img, exported, epochs=1)
    with pytest.raises(InputError, match="`unlabelled`"):
        bigseg.train(img, exported, unlabelled=-1)
    stray = exported.copy()
    stray[0, 0, :3] = (7, 255, 9)  # said as given, not as moved down by `unlabelled=0` (6, 254, 8)
    with pytest.raises(InputError, match=r"values 1, 2, 3 or 0 \(unlabelled\). Got \[7, 9, 255\] instead\.$"):
        bigseg.train(img, stray, unlabelled=0, epochs=1)
    with pytest.warns(UserWarning, match="`unlabelled`=0 marks no voxel of `labels`: every voxel trains"):
        bigseg.train(img, lab.astype(np.uint8) + 1, unlabelled=0, arch_kwargs=TINY, patch=(32, 32), epochs=1,
                     steps_per_epoch=1, augment=False, progress=False)  # dense, from 1: nothing is marked 0


def test_a_value_beyond_the_phases_of_labels_marking_255_asks_for_the_phases(pair):
    # sparse labels in bigseg's convention (255 = not annotated) with a fourth phase, or `phases`
    # naming too few: the message suggested `unlabelled=0` (wrong: 0 is a phase there, and
    # following it refused the 255 voxels), not `phases`
    img, _, sparse = pair
    four = sparse.copy()
    four[1, 8, 4:8] = 3
    with pytest.raises(InputError, match=r"values 0, 1, 2 or 255 \(unlabelled\)\. "
                                         r"Got \[3\] instead; the labels mark unannotated voxels 255, so each value is "
                                         r"a phase: pass `phases` with a name for each of the 4 values 0\.\.3\.$"):
        bigseg.train(img, four, epochs=1, progress=False)
    with pytest.raises(InputError, match=r"values 0, 1 or 255 \(unlabelled\)\. Got \[2\] "
                                         r"instead; .*pass `phases` with a name for each of the 3 values 0\.\.2\.$"):
        bigseg.train(img, sparse, phases=["a", "b"], epochs=1, progress=False)
    # classes counted from 1 (napari: 0 not annotated) with a fourth: `phases` asked for (was no hint)
    exported = np.where(four == 255, 0, four.astype(np.int32) + 1)
    with pytest.raises(InputError, match=r"values 1, 2, 3 or 0 \(unlabelled\)\. Got \[4\] instead; with 0 "
                                         r"unannotated, each of the values 1\.\.4 is a phase: pass `phases` with a "
                                         r"name for each of the 4\.$"):
        bigseg.train(img, exported, unlabelled=0, epochs=1, progress=False)


def test_annotations_with_classes_from_1_train_as_the_same_labels(pair):
    img, lab, sparse = pair
    exported = np.where(sparse == 255, 0, sparse + 1).astype(np.uint8)
    kw = dict(arch_kwargs=TINY, patch=(32, 32), epochs=1, steps_per_epoch=3, augment=False, progress=False, seed=2)
    a = bigseg.train(img, sparse, **kw)
    b = bigseg.train(img, exported, unlabelled=0, **kw)
    assert a.provenance["data"]["labelled_voxels"] == b.provenance["data"]["labelled_voxels"] == int((sparse != 255).sum())
    for (_, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        torch.testing.assert_close(p, q)  # the same training, step for step
    two = np.where(np.isin(sparse, [0, 1]), sparse + 1, 0).astype(np.uint8)  # pore and CBD annotated, from 1
    with pytest.warns(UserWarning, match="fills .* each of those voxels trains as phase 0"):
        bigseg.train(img, two, **kw)


def test_bigseg_train_callable_as_package():
    import bigseg.train as pkg

    assert callable(pkg) and callable(bigseg.train)
    assert hasattr(bigseg.train, "synthetic")
    import inspect

    params = inspect.signature(bigseg.train).parameters  # call tips show train's, not (*args, **kwargs)
    assert list(params)[:2] == ["image", "labels"] and "lr_decay" in params and "init" in params


def test_bigseg_train_help_shows_train_parameters():
    """help(bigseg.train) and a notebook's `bigseg.train?` (the package's docstring, its __call__'s
    signature) show train's parameters, not the package's summary and (*args, **kwargs)."""
    import inspect

    doc = inspect.getdoc(bigseg.train)
    assert "epochs :" in doc and "lr, lr_decay :" in doc and "Returns" in doc
    call = inspect.signature(bigseg.train.__call__)  # IPython's "Call signature"
    assert call == inspect.signature(bigseg.train) and list(call.parameters)[:2] == ["image", "labels"]


def test_bigseg_train_is_the_same_callable_on_first_and_later_lookups():
    import subprocess
    import sys

    code = ("import bigseg; first = bigseg.train; from bigseg import train; "
            "assert first is train is bigseg.train and callable(first) and callable(first.synthetic)")
    subprocess.run([sys.executable, "-c", code], check=True)  # a fresh interpreter: the first lookup counts


def test_train_synthetic_true_is_train_synthetic():
    kw = dict(arch_kwargs=TINY, patch=(32, 32), epochs=1, batch_size=1, progress=False, seed=4)
    gen = dict(shape=(4, 32, 32), val_shape=(2, 32, 32), presets=["lab-micro-ct"], batches_per_volume=1)
    a = bigseg.train(synthetic={**gen, "steps_per_epoch": 1}, **kw)
    b = bigseg.train.synthetic(steps_per_epoch=1, **gen, **kw)
    assert (a.provenance["lr"], a.provenance["lr_decay"]) == (b.provenance["lr"], b.provenance["lr_decay"]) == (1e-3, 0.8)
    c = bigseg.train(synthetic=gen, lr=5e-4, steps_per_epoch=1, **kw)  # a schedule given is kept
    assert c.provenance["lr"] == 5e-4 and c.provenance["steps"] == 1
    # also a value equal to train's default (for sparse labels) is kept: it was taken for "left
    # at the default" and replaced by synthetic()'s 1e-3 / 0.8
    d = bigseg.train(synthetic={**gen, "steps_per_epoch": 1}, lr=1e-4, lr_decay=0.3, **kw)
    assert (d.provenance["lr"], d.provenance["lr_decay"]) == (1e-4, 0.3)
    assert type(d.provenance["lr"]) is float and type(a.provenance["patience"] or 0) is int


def test_synthetic_generator_in_the_loop():
    m = bigseg.train.synthetic(arch_kwargs=TINY, patch=(32, 32), shape=(6, 40, 40), val_shape=(2, 32, 32),
                               presets=["lab-micro-ct", "nano-ct-phase"], epochs=1, steps_per_epoch=4, batches_per_volume=2,
                               batch_size=2, progress=False, seed=4)
    prov = m.provenance
    assert prov["data"]["volumes_generated"] == 2
    scores = prov["scores"]["validation_iou_by_preset"]
    assert set(scores) == {"lab-micro-ct", "nano-ct-phase"} and set(scores["lab-micro-ct"]) == {"pore", "cbd", "active"}
    with pytest.raises(InputError, match="presets"):
        bigseg.train.synthetic(presets=["nope"], epochs=1)


@pytest.mark.slow
def test_volumes_made_ahead_in_worker_processes_give_the_same_model():
    """workers > 0 makes the volumes in other processes (a GPU waits on the simulator otherwise):
    the recipes are still drawn in order from the one seeded generator, so the model is the same."""
    import torch

    kw = dict(arch_kwargs=TINY, patch=(32, 32), shape=(4, 40, 40), val_shape=(2, 32, 32), presets=["lab-micro-ct", "nano-ct-phase"],
              epochs=1, steps_per_epoch=5, batches_per_volume=1, batch_size=1, progress=False, seed=5, augment=False)
    a = bigseg.train.synthetic(**kw)
    b = bigseg.train.synthetic(workers=2, **kw)
    assert b.provenance["data"]["workers"] == 2 and b.provenance["data"]["volumes_generated"] == 5
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    with pytest.raises(InputError, match="`workers`"):
        bigseg.train.synthetic(workers=-1, **kw)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_ctrl_c_with_data_workers_stops_quietly(tmp_path, interruptible_bigseg):
    """Ctrl-C reaches the whole process group: the workers leave it to the trainer, which says
    it was interrupted (exit 130) without a traceback from each worker."""
    import os
    import signal
    import subprocess
    import time

    ckpt = tmp_path / "ckpt"
    cmd = [*interruptible_bigseg, "train", "--synthetic",
           "--arch", "unet3d", "--channels", "4,8", "--patch", "16,16,16", "--shape", "16,32,32", "--epochs", "50",
           "--steps-per-epoch", "5", "--batch-size", "1", "--data-workers", "2", "--no-progress",
           "--checkpoint-dir", str(ckpt), "-o", str(tmp_path / "m.pt")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    t0 = time.time()
    while not (ckpt / "epoch_001.pt").exists() and proc.poll() is None and time.time() - t0 < 90:
        time.sleep(0.2)  # the first epoch done: the workers are making volumes ahead
    assert proc.poll() is None, proc.stderr.read()
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: to every process of the group
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert not (tmp_path / "m.pt").exists()


def test_random_electrodes_span_fine_and_coarse_microstructures():
    """The generator in the loop draws mean particle radii from 5 to 20 voxels (log-uniform), so
    the model sees fine lab-CT-like and coarse nano-CT-like scales; fractions stay valid."""
    from bigseg.train import random_electrode

    rng = np.random.default_rng(0)
    draws = [random_electrode(rng) for _ in range(400)]
    means = np.array([d["radius"][0] for d in draws])
    assert means.min() >= 5.0 and means.max() <= 20.0
    assert (means < 7).mean() > 0.15 and (means > 14).mean() > 0.15  # both ends drawn, not only the middle
    assert np.median(means) == pytest.approx(10.0, rel=0.1)  # log-uniform: geometric mean of 5 and 20
    for d in draws[:20]:
        assert sum(d["fractions"]) == pytest.approx(1.0) and min(d["fractions"]) > 0


def test_series_with_one_annotated_scan_trains_on_that_scan(pair):
    from bigseg.train._data import load_pair

    img, _, sparse = pair
    series = np.stack([img * 2.0, img])  # another scan before the annotated one
    labels = np.stack([np.full_like(sparse, 255), sparse])
    got_img, got_lab = load_pair(series, labels, 3)
    np.testing.assert_array_equal(got_img, img)
    np.testing.assert_array_equal(got_lab, sparse)
    with pytest.raises(InputError, match=r"one time step.*\[0, 1\]"):
        load_pair(series, np.stack([sparse, sparse]), 3)


def test_training_inside_a_field_of_view(pair):
    """A masked reconstruction is prepared as segment(fov=) prepares it; labels outside count
    for nothing."""
    from bigseg.io import fill_outside, fov_mask
    from bigseg.train._data import normalize_image

    img, lab, _ = pair
    inside = fov_mask(img, "cylinder").values
    rec = fill_outside(bigseg.io.make_volume(img), inside, 0).values
    arr, lo, hi = normalize_image(rec, fov=inside)
    ref = bigseg.filters.normalize(img, mask=inside)
    assert (lo, hi) == pytest.approx(ref.attrs["normalize"])  # the inside's percentiles, not the fill's
    np.testing.assert_allclose(arr[:, inside], ref.values[:, inside], rtol=1e-6)
    out = arr[:, ~inside]
    assert abs(out.mean() - arr[:, inside].mean()) < 0.03 and abs(out.std() - arr[:, inside].std()) < 0.03
    dense = lab.copy()  # labelled everywhere, also outside the circle
    m = bigseg.train(rec, dense, arch="lrcsnet", arch_kwargs=TINY, patch=(32, 32), epochs=1, steps_per_epoch=1,
                     batch_size=2, progress=False, seed=1, fov="auto", val_fraction=0)
    data = m.provenance["data"]
    assert data["labelled_voxels"] == int(inside.sum()) * lab.shape[0]
    assert data["fov"]["spec"] == "auto" and data["fov"]["inside_fraction"] == pytest.approx(inside.mean(), abs=1e-4)
    assert data["percentiles"] == pytest.approx(list(ref.attrs["normalize"]))
    with pytest.warns(UserWarning, match="no constant fill found"):  # a scan with no fill: said (was silent)
        bigseg.train(img, dense, arch="lrcsnet", arch_kwargs=TINY, patch=(32, 32), epochs=1, steps_per_epoch=1,
                     batch_size=2, progress=False, seed=1, fov="auto", val_fraction=0)


def test_a_data_worker_that_dies_is_said_plainly(monkeypatch):
    """A worker killed (the kernel's out-of-memory killer, say) breaks the pool: said with what to
    change, not as concurrent.futures' BrokenProcessPool."""
    from bigseg.train import _synthetic

    monkeypatch.setattr(_synthetic, "make_pair", _die)  # what the worker is sent to run (pickled by name)
    gen = _synthetic._Generator((4, 24, 24), (16, 16), ["lab-micro-ct"], 1, 3, 0, None, (5.0, 8.0), workers=1)
    try:
        with pytest.raises(RuntimeError, match=r"`workers`=1 .*ended abruptly.*smaller `shape` \(4, 24, 24\)"):
            gen._next_pair()
    finally:
        gen.close()


def _die(shape, **recipe):
    import os

    os._exit(1)


def test_closing_does_not_wait_for_the_volumes_being_made(monkeypatch):
    """At the deadline (or Ctrl-C) the workers are stopped, not waited for: the volumes in the
    making are dropped anyway."""
    import time

    from bigseg.train import _synthetic

    monkeypatch.setattr(_synthetic, "make_pair", _quick_then_slow)
    gen = _synthetic._Generator((4, 24, 24), (16, 16), ["lab-micro-ct"], 1, 3, 0, None, (5.0, 8.0), workers=1)
    try:
        assert gen._next_pair()[0].shape == (4, 24, 24)  # the worker is now making the next one (2 minutes)
        procs = list(gen.pool._processes.values())
        time.sleep(0.5)
        t0 = time.time()
    finally:
        gen.close()
    assert time.time() - t0 < 10
    for p in procs:  # stopped, not left making its 2-minute volume (on a loaded machine it may take a moment
        p.join(timeout=20)  # to be reaped: the full suite on 2 cores saw it alive just after close)
    assert procs and not any(p.is_alive() for p in procs) and gen.pool is None


_CALLS = []


def _quick_then_slow(shape, **recipe):
    import time

    _CALLS.append(1)  # in the worker process
    if len(_CALLS) > 1:
        time.sleep(120)
    return np.zeros(shape, np.float32), np.zeros(shape, np.uint8)


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_data_workers_end_with_a_trainer_killed_outright(tmp_path):
    """SIGKILL (or a scheduler's SIGTERM) to the trainer alone: its data workers end too instead
    of waiting forever for work, orphaned."""
    import os
    import signal
    import subprocess
    import time

    script = tmp_path / "t.py"
    script.write_text(
        "import multiprocessing, time\n"
        "from bigseg.train import _synthetic\n"
        "if __name__ == '__main__':\n"
        "    gen = _synthetic._Generator((4, 24, 24), (16, 16), ['lab-micro-ct'], 1, 3, 0, None, (5.0, 8.0), workers=2)\n"
        "    gen._next_pair()\n"
        "    print(' '.join(str(p.pid) for p in multiprocessing.active_children()), flush=True)\n"
        "    time.sleep(300)\n")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, start_new_session=True)
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert len(pids) >= 2, pids  # the two workers (and no more than spawn's helpers)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    t0 = time.time()
    while any(_alive(p) for p in pids) and time.time() - t0 < 30:
        time.sleep(0.2)
    assert not any(_alive(p) for p in pids)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[-1][0] != "Z"  # a zombie has ended
    except OSError:
        return False


def test_a_data_worker_starts_where_there_is_no_prctl(monkeypatch):
    """Windows: ``ctypes.CDLL(None)`` raises TypeError (LoadLibrary wants a name), which failed each
    data worker's start-up and so every training with data workers (BrokenProcessPool); it is
    asked for on Linux alone."""
    import ctypes
    import signal

    from bigseg.train import _synthetic

    def no_cdll(name, *args, **kwargs):
        raise TypeError("LoadLibrary() argument 1 must be str, not None")

    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(ctypes, "CDLL", no_cdll)
    before = signal.getsignal(signal.SIGINT)
    try:
        _synthetic._worker_setup(os.getppid())  # (the worker's parent: this process's)
    finally:
        signal.signal(signal.SIGINT, before)


def test_absurd_epochs_are_refused_before_the_data_are_read(pair):
    """epochs=10**12 was accepted, then trained until `patience` stopped it, or for ever; 3.0 and
    True stay refused as every other count is."""
    from bigseg.train._train import MAX_EPOCHS

    img, _, sparse = pair
    unlabelled = np.full_like(sparse, 255)  # refused once the labels are read: the options before
    for bad in (MAX_EPOCHS + 1, 10**12):
        with pytest.raises(InputError, match=f"^Expected `epochs` to be at most {MAX_EPOCHS:,}. Got {bad} instead.$"):
            bigseg.train(img, unlabelled, epochs=bad)
    for bad in (3.0, True):
        with pytest.raises(InputError, match=f"^Expected `epochs` to be a positive integer. Got {bad!r} instead.$"):
            bigseg.train(img, unlabelled, epochs=bad)
    from bigseg.train._train import MAX_STEPS_PER_EPOCH  # (an epoch of 10**12 steps: never validated)

    with pytest.raises(InputError, match=f"^Expected `steps_per_epoch` to be at most {MAX_STEPS_PER_EPOCH:,}"):
        bigseg.train(img, unlabelled, steps_per_epoch=10**12)


def test_patch_and_batch_too_small_for_the_networks_normalisation_are_refused_before_work(pair):
    """A deepest level of one voxel: torch stopped the training at its first step ("Expected more
    than 1 value per channel when training"), after the data were loaded."""
    img, lab, sparse = pair
    with pytest.raises(InputError, match=r"`batch_size` of at least 2 with `patch` \(8, 8\) for 'lrcsnet'.*"
                                         r"Got batch_size=1 instead"):
        bigseg.train(img, sparse, arch_kwargs=TINY, patch=(8, 8), batch_size=1, epochs=1, progress=False)
    with pytest.raises(InputError, match=r"`patch` larger than 8 voxels along at least one axis for 'unet3d'.*"
                                         r"Got \(8, 8, 8\)"):
        bigseg.train(img, sparse, arch="unet3d", arch_kwargs={"channels": (2, 4, 4, 4)}, patch=(8, 8, 8), epochs=1,
                     progress=False)
    # the smallest that work: two values per channel at the deepest level
    m = bigseg.train(img, sparse, arch_kwargs=TINY, patch=(8, 16), batch_size=1, epochs=1, steps_per_epoch=1,
                     augment=False, progress=False)
    assert m.patch == (8, 16)
    m = bigseg.train(img, sparse, arch="unet3d", arch_kwargs={"channels": (2, 4)}, patch=(8, 8, 8), batch_size=1,
                     epochs=1, steps_per_epoch=1, augment=False, progress=False)
    assert m.patch == (8, 8, 8)


def test_architecture_options_and_axis_are_refused_before_work(pair, monkeypatch):
    img, lab, sparse = pair
    from bigseg.train import _train as train_module

    def no_loading(*a, **k):  # the refusal comes before the volumes are read
        raise AssertionError("loaded the data")

    monkeypatch.setattr(train_module, "load_pair", no_loading)
    with pytest.raises(InputError, match="`kernel_size` to be an odd positive integer"):  # was a crash in training
        bigseg.train(img, sparse, arch_kwargs={"kernel_size": 4}, epochs=1)
    with pytest.raises(InputError, match="`norm` to be one of"):
        bigseg.train(img, sparse, arch="unet3d", arch_kwargs={"norm": "group"}, epochs=1)
    with pytest.raises(InputError, match=r"`axis` to be 'z', 'y' or 'x' \(or 0, 1 or 2\), the axis of the annotated slices. Got 1.5 instead"):  # was axis 1
        bigseg.train(img, sparse, axis=1.5, epochs=1)
    with pytest.raises(InputError, match=r"`patch` to be 2 positive ints. Got '32' instead"):  # was (3, 2)
        bigseg.train(img, sparse, patch="32", epochs=1)


def test_one_labelled_slice_keeps_some_for_training_at_any_val_fraction():
    one = np.full((4, 10, 6), 255, np.uint8)
    one[2, 1:9, 1:5] = 1
    for val_fraction in (0.01, 0.5, 0.9, 0.99):  # 0.9 and above held the whole slice back: nothing to train on
        tr, va = split_validation(one, axis=0, val_fraction=val_fraction, seed=0)
        assert (tr != 255).any() and (va != 255).any(), val_fraction
        assert ((tr != 255) & (va != 255)).sum() == 0 and ((tr != 255) | (va != 255)).sum() == (one != 255).sum()


def test_one_labelled_slice_trains_with_a_large_val_fraction(pair):
    img, lab, sparse = pair
    one = np.full_like(sparse, 255)
    one[5, 8:40, 4:34] = lab[5, 8:40, 4:34]
    m = bigseg.train(img, one, arch_kwargs=TINY, patch=(16, 16), batch_size=2, epochs=1, steps_per_epoch=1,
                     val_fraction=0.99, augment=False, progress=False)  # was "Expected labelled voxels for training"
    assert m.provenance["scores"]["validation_iou"]


def test_labels_all_outside_the_field_of_view_are_said(pair):
    img, lab, sparse = pair
    corner = np.full_like(sparse, 255)
    corner[[1, 3], :3, :3] = lab[[1, 3], :3, :3]  # outside the inscribed circle
    with pytest.raises(InputError, match=r"`labels` inside the field of view `fov`='cylinder'.*Got every labelled "
                                         r"voxel outside it"):  # was an IndexError from the validation split
        bigseg.train(img, corner, fov="cylinder", arch_kwargs=TINY, patch=(16, 16), epochs=1, progress=False)
    # a phase annotated only outside it is said as absent (nothing of it trains)
    some = sparse.copy()
    some[some == 1] = 255
    some[1, :3, :3] = 1
    with pytest.warns(UserWarning, match="no voxel of cbd inside the field of view"):
        bigseg.train(img, some, fov="cylinder", arch_kwargs=TINY, patch=(16, 16), batch_size=2, epochs=1,
                     steps_per_epoch=1, augment=False, progress=False)


def test_bad_validation_pair_is_said_as_the_validation_pair(pair):
    img, lab, sparse = pair
    bad = lab.copy()
    bad[0, 0, 0] = 9
    with pytest.raises(InputError, match=r"^In `validation` \(image, labels\): Expected `labels` values .*Got \[9\]"):
        bigseg.train(img, sparse, validation=(img, bad), arch_kwargs=TINY, patch=(16, 16), epochs=1, progress=False)
    with pytest.raises(InputError, match=r"^In `validation` \(image, labels\): .*same shape"):
        bigseg.train(img, sparse, validation=(img[:6], lab), arch_kwargs=TINY, patch=(16, 16), epochs=1, progress=False)


def test_train_synthetic_refuses_the_options_of_labels_and_passes_phases_on(pair):
    """`axis`, `val_fraction`, `validation`, `unlabelled`, `fov` and `fov_margin` were silently
    ignored with `synthetic`; `phases` was dropped."""
    img, lab, sparse = pair
    for kw, said in (({"val_fraction": 0.3}, "val_fraction=0.3"), ({"axis": 1}, "axis=1"),
                     ({"validation": (img, lab)}, "validation=a pair"), ({"unlabelled": 0}, "unlabelled=0"),
                     ({"fov": "cylinder"}, "fov='cylinder'"), ({"fov_margin": 2}, "fov_margin=2")):
        with pytest.raises(InputError, match=f"only when training on `image` and `labels`, not with `synthetic` "
                                             rf"\(its validation volumes are generated\). Got {said} with it"):
            bigseg.train(synthetic=True, epochs=1, progress=False, **kw)
    with pytest.raises(InputError, match=r"Expected 3 phases .* Got \['pore', 'solid'\]"):
        bigseg.train(synthetic=True, phases=["pore", "solid"], epochs=1, progress=False)


def test_provenance_says_which_slices_were_held_back(pair, tmp_path):
    img, lab, sparse = pair
    m = bigseg.train(img, sparse, arch_kwargs=TINY, patch=(16, 16), batch_size=2, epochs=1, steps_per_epoch=1,
                     val_fraction=0.4, augment=False, progress=False, seed=2)
    held = m.provenance["data"]["validation_slices"]
    _, va = split_validation(sparse, axis=0, val_fraction=0.4, seed=2)
    assert held == [z for z in range(sparse.shape[0]) if (va[z] != 255).any()] and len(held) == 2
    assert set(held) <= {1, 3, 6, 8, 10}
    models.save(m, tmp_path / "m.pt")
    assert models.load(tmp_path / "m.pt").provenance["data"]["validation_slices"] == held


@pytest.mark.parametrize("folder", ["ck", "ck [2]"])  # (brackets: no glob's set of characters)
def test_earlier_checkpoints_in_the_folder_are_said(pair, tmp_path, folder):
    """A second run into the same `checkpoint_dir` left the first run's later epochs beside its
    own, as if it had written them: said before the training."""
    img, _, sparse = pair
    ck = tmp_path / folder
    ck.mkdir()
    for name in ("epoch_001.pt", "epoch_006.pt", "best.pt"):
        (ck / name).write_bytes(b"earlier")
    with pytest.warns(UserWarning, match=r"already holds 3 checkpoint\(s\) of an earlier run \(epoch_001.pt, "
                                         r"epoch_006.pt, best.pt\)"):
        bigseg.train(img, sparse, arch_kwargs=TINY, patch=(32, 32), epochs=1, steps_per_epoch=1, batch_size=2,
                     checkpoint_dir=str(ck), progress=False)
    assert (ck / "epoch_006.pt").read_bytes() == b"earlier"  # the user's files: said, not deleted
    assert (ck / "epoch_001.pt").read_bytes() != b"earlier"


def test_an_image_without_contrast_is_refused(pair):
    """A constant (blank, saturated) image trained silently: the network saw zeros everywhere."""
    _, _, sparse = pair
    with pytest.raises(InputError, match=r"Expected `image` with contrast: its 0.5 and 99.5 percentiles are both 3"):
        bigseg.train(np.full(sparse.shape, 3.0, np.float32), sparse, arch_kwargs=TINY, patch=(32, 32), epochs=1,
                     progress=False)


def _same_weights(a, b):
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name


def test_a_stopped_run_resumed_gives_the_model_of_the_whole_run(pair, tmp_path):
    """Stopped after 2 of 4 epochs (a job's wall time) and resumed: the same weights, history and
    schedule as the run that was never stopped (optimiser moments, generators and best weights
    taken up)."""
    img, _, sparse = pair
    kw = dict(arch_kwargs=TINY, patch=(32, 32), steps_per_epoch=3, batch_size=2, lr=1e-2, lr_decay=0.5, patience=None,
              progress=False, seed=3)
    whole = bigseg.train(img, sparse, epochs=4, checkpoint_dir=str(tmp_path / "whole"), **kw)
    ck = str(tmp_path / "ck")
    bigseg.train(img, sparse, epochs=2, checkpoint_dir=ck, **kw)
    resumed = bigseg.train(img, sparse, epochs=4, checkpoint_dir=ck, resume=True, **kw)
    _same_weights(whole, resumed)
    hw, hr = whole.provenance["history"], resumed.provenance["history"]
    assert [r["loss"] for r in hw] == [r["loss"] for r in hr] and [r["lr"] for r in hr] == [1e-2 * 0.5 ** i for i in range(4)]
    assert [r["val_iou"] for r in hw] == [r["val_iou"] for r in hr]
    assert resumed.provenance["best_epoch"] == whole.provenance["best_epoch"]
    assert resumed.provenance["steps"] == 12 and resumed.provenance["epochs"] == 4
    assert resumed.provenance["resumed_after_epochs"] == [2] and "resumed_after_epochs" not in whole.provenance
    # not the same run: refused by name, before any training
    for other, said in ((dict(kw, lr=1e-3), "lr=0.001 where it had 0.01"), (dict(kw, seed=4), "seed=4 where it had 3")):
        with pytest.raises(InputError, match=f"Expected the settings of the run in `checkpoint_dir` to resume it. Got {said}"):
            bigseg.train(img, sparse, epochs=6, checkpoint_dir=ck, resume=True, **other)
    other_labels = sparse.copy()
    other_labels[1, 8:12, 4:8] = 255
    with pytest.raises(InputError, match=r"Expected the image and labels \(and validation slices\) of the run .* Got other"):
        bigseg.train(img, other_labels, epochs=6, checkpoint_dir=ck, resume=True, **kw)
    with pytest.raises(InputError, match="Expected `epochs` above the 4 the run"):
        bigseg.train(img, sparse, epochs=4, checkpoint_dir=ck, resume=True, **kw)
    with pytest.raises(InputError, match=r"to hold a run to resume \(resume.pt.*first epoch ended .* without `resume`"):
        bigseg.train(img, sparse, epochs=4, checkpoint_dir=str(tmp_path / "empty"), resume=True, **kw)
    with pytest.raises(InputError, match="Expected `checkpoint_dir` with `resume`"):
        bigseg.train(img, sparse, epochs=4, resume=True, **kw)
    with pytest.raises(InputError, match="`resume` to be True or False"):
        bigseg.train(img, sparse, epochs=4, checkpoint_dir=ck, resume="yes", **kw)


def test_a_synthetic_run_resumed_mid_volume_makes_the_same_volumes(tmp_path):
    """The generator in the loop is taken up too: the volume in use when the run stopped is made
    again from its recipe (3 batches a volume, 2 steps an epoch: stopped half-way through one)."""
    kw = dict(arch_kwargs=TINY, patch=(32, 32), shape=(4, 40, 40), val_shape=(2, 32, 32), presets=["lab-micro-ct"],
              steps_per_epoch=2, batches_per_volume=3, batch_size=1, progress=False, seed=5)
    whole = bigseg.train.synthetic(epochs=3, **kw)
    ck = str(tmp_path / "ck")
    bigseg.train.synthetic(epochs=1, checkpoint_dir=ck, **kw)
    resumed = bigseg.train(synthetic=dict(shape=(4, 40, 40), val_shape=(2, 32, 32), presets=["lab-micro-ct"],
                                          batches_per_volume=3), arch_kwargs=TINY, patch=(32, 32), steps_per_epoch=2,
                           batch_size=1, progress=False, seed=5, epochs=3, checkpoint_dir=ck, resume=True)
    _same_weights(whole, resumed)
    assert resumed.provenance["data"]["volumes_generated"] == whole.provenance["data"]["volumes_generated"] == 2
    assert [r["loss"] for r in whole.provenance["history"]] == [r["loss"] for r in resumed.provenance["history"]]


def test_an_epoch_cut_short_by_max_minutes_is_done_again_on_resume(pair, tmp_path, monkeypatch):
    """max_minutes stops mid-epoch: the state of the last whole epoch is the one resumed, so the
    model is still that of the unstopped run."""
    import time

    img, _, sparse = pair
    kw = dict(arch_kwargs=TINY, patch=(32, 32), steps_per_epoch=3, batch_size=2, lr=1e-2, patience=None,
              progress=False, seed=3)
    whole = bigseg.train(img, sparse, epochs=3, **kw)
    ck = str(tmp_path / "ck")
    clock = {"now": 0.0}

    def fake():  # 1 s a call: 1 epoch of 3 steps, then the deadline falls in the second
        clock["now"] += 1.0
        return clock["now"]

    with monkeypatch.context() as m:
        m.setattr(time, "perf_counter", fake)
        cut = bigseg.train(img, sparse, epochs=3, checkpoint_dir=ck, max_minutes=6 / 60, **kw)
    assert cut.provenance["timed_out"] and cut.provenance["history"][-1]["steps"] < 3
    resumed = bigseg.train(img, sparse, epochs=3, checkpoint_dir=ck, resume=True, **kw)
    assert resumed.provenance["resumed_after_epochs"] == [len(cut.provenance["history"]) - 1]
    _same_weights(whole, resumed)


def _refuse_loading(monkeypatch):
    """Loading the image (work) fails the test: what is refused must be refused before it."""
    def loaded(*args, **kwargs):
        raise AssertionError("the image was loaded before the refusal")

    monkeypatch.setattr("bigseg.train._train.load_pair", loaded)
    monkeypatch.setattr("bigseg.train._synthetic.make_pair", loaded)


def test_phases_the_init_model_means_otherwise_are_refused_before_work(pair, monkeypatch):
    """Labels naming some of the init's phases at other values trained its channels under other
    names (its 'cbd' channel as 'active'); another number of phases was refused only after the
    image was loaded; a synthetic fine-tune trained the init's channels in the generator's order."""
    img, _, sparse = pair
    init = models.create("lrcsnet", patch=(32, 32), **TINY)  # pore, cbd, active
    _refuse_loading(monkeypatch)
    partial = xr.DataArray(sparse, dims=("z", "y", "x"), attrs={"phases": ["pore", "active", "crack"]})
    with pytest.raises(ModelError, match=r"`init` model's phases \['pore', 'cbd', 'active'\].*Got \['pore', 'active', "
                                         r"'crack'\]: 'active' at value 1 where the `init` model has it at 2"):
        bigseg.train(img, partial, init=init, epochs=1)
    with pytest.raises(ModelError, match=r"`init` model's 3 phases .* labels' \['pore', 'solid'\]"):
        bigseg.train(img, sparse, init=init, phases=["pore", "solid"], epochs=1)
    swapped = models.create("lrcsnet", patch=(32, 32), phases=["active", "cbd", "pore"], **TINY)
    with pytest.raises(ModelError, match="'pore' at value 0 where the `init` model has it at 2"):
        bigseg.train(synthetic=True, init=swapped, epochs=1)


def test_validation_labels_of_other_phases_are_refused_before_work(pair, monkeypatch):
    """A validation pair whose labels name the phases in another order was scored as if in the
    training labels' order (wrong IoU, wrong best epoch)."""
    img, lab, sparse = pair
    _refuse_loading(monkeypatch)
    other = xr.DataArray((2 - lab).astype(np.uint8), dims=("z", "y", "x"), attrs={"phases": ["active", "cbd", "pore"]})
    with pytest.raises(InputError, match=r"`validation` labels' phases \['active', 'cbd', 'pore'\] to be the training "
                                         r"labels' \['pore', 'cbd', 'active'\]"):
        bigseg.train(img, sparse, validation=(img, other), epochs=1)
    # the same phases in other case ("Pore" for "pore"), in order: taken (was refused), scored value by value
    cased = xr.DataArray(lab, dims=("z", "y", "x"), attrs={"phases": ["Pore", "CBD", "Active"]})
    with pytest.raises(AssertionError, match="the image was loaded"):  # past the check, on to the work
        bigseg.train(img, sparse, validation=(img, cased), epochs=1)


def test_an_init_model_expecting_other_input_is_refused(pair, monkeypatch):
    """train prepares the image by percentiles whatever the init's `normalization` says, and kept
    that statement: segment() then fed such a model raw grey values."""
    img, _, sparse = pair
    _refuse_loading(monkeypatch)
    raw = models.create("lrcsnet", patch=(32, 32), normalization={"method": "none"}, **TINY)
    with pytest.raises(ModelError, match=r"`init` model's normalization to be percentile-based.*Got \{'method': "
                                         r"'none'\}"):
        bigseg.train(img, sparse, init=raw, epochs=1)


def test_errors_name_the_arguments_of_train(pair, tmp_path):
    """The checkpoint path and the grey values were said as `name_or_path` and `vol`."""
    img, lab, sparse = pair
    with pytest.raises(ModelError, match=r"Expected `init` to be 'default' or an existing checkpoint file. Got '.*/nope"):
        bigseg.train(img, sparse, init=str(tmp_path / "nope.pt"), epochs=1)
    holed = img.copy()
    holed[0, 0, 0] = np.nan
    with pytest.raises(InputError, match=r"Expected `image` to hold finite values only. Got 1 NaN"):
        bigseg.train(holed, sparse, epochs=1)
    with pytest.raises(InputError, match=r"In `validation` \(image, labels\): Expected `image` to hold finite values"):
        bigseg.train(img, sparse, validation=(holed, lab), arch_kwargs=TINY, patch=(32, 32), epochs=1)


def test_resuming_a_run_that_stopped_early_trains_no_further(pair, tmp_path):
    """A run stopped by `patience` is finished: resumed, it trained one more epoch (and wrote its
    checkpoint); with a larger patience it goes on."""
    img, _, sparse = pair
    kw = dict(arch_kwargs=TINY, patch=(32, 32), steps_per_epoch=1, batch_size=2, lr=1e-12, lr_decay=1.0, progress=False,
              epochs=6, checkpoint_dir=str(tmp_path / "ck"))
    first = bigseg.train(img, sparse, patience=1, **kw)
    assert first.provenance["stopped_early"] and first.provenance["epochs"] == 2
    again = bigseg.train(img, sparse, patience=1, resume=True, **kw)
    assert again.provenance["epochs"] == 2 and again.provenance["stopped_early"]
    assert not (tmp_path / "ck" / "epoch_003.pt").exists()
    assert bigseg.train(img, sparse, patience=3, resume=True, **kw).provenance["epochs"] == 4


def test_an_unreadable_training_state_is_said_without_unsafe_advice(pair, tmp_path):
    """torch's message for a refused pickle advises weights_only=False, which runs its code."""
    import pickle

    img, _, sparse = pair
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "resume.pt").write_bytes(pickle.dumps({"version": 1, "x": np.float64}, protocol=2))
    with pytest.raises(InputError, match="readable resume.pt. Got UnpicklingError: Unsupported global: GLOBAL "
                                         "numpy.float64 was not an allowed global by default.$") as refused:
        bigseg.train(img, sparse, epochs=2, checkpoint_dir=str(tmp_path / "ck"), resume=True)
    assert "can still be loaded" not in str(refused.value)


def test_a_phase_annotated_only_on_the_held_back_slices_is_said(pair):
    """Validation took the one slice annotated with CBD: the model learnt nothing of it, unsaid."""
    img, _, sparse = pair
    _, val = split_validation(sparse, axis=0, val_fraction=0.15, seed=0)
    held = int(np.flatnonzero((val != 255).any((1, 2)))[0])
    only = np.where((sparse == 1) & (np.arange(len(sparse)) != held)[:, None, None], 255, sparse).astype(np.uint8)
    with pytest.warns(UserWarning, match="The labels of cbd lie only in the slices held back for validation"):
        bigseg.train(img, only, arch_kwargs=TINY, patch=(32, 32), epochs=1, steps_per_epoch=1, batch_size=2,
                     progress=False)


def test_no_quarter_turns_in_planes_of_unequal_voxels(pair, monkeypatch):
    """A 2D model trained across y on voxels twice as long along z: a 90° rotation of a (z, x)
    patch swapped z and x, teaching shapes stretched the other way. Flips stay; equal in-plane
    voxels (across z, or a 3D model's (y, x)) keep the rotations."""
    import bigseg.train._train as tr

    img, _, sparse = pair
    seen = []
    real = tr.fit

    def spy(*args, **kwargs):
        seen.append(kwargs["augment"])
        return real(*args, **kwargs)

    monkeypatch.setattr(tr, "fit", spy)
    tall = {"voxel_size": (100.0, 50.0, 50.0), "unit": "nm"}
    kw = dict(arch_kwargs=TINY, patch=(32, 32), epochs=1, steps_per_epoch=1, batch_size=2, progress=False)
    scan = xr.DataArray(img, dims=("z", "y", "x"), attrs=tall)
    across_y = np.full_like(sparse, 255)
    across_y[:, 10:40:6] = np.moveaxis(pair[1], 1, 0)[10:40:6].swapaxes(0, 1)  # labels on (z, x) planes
    bigseg.train(scan, across_y, axis=1, val_fraction=0, **{**kw, "patch": (8, 32)})
    bigseg.train(scan, sparse, axis=0, val_fraction=0, **kw)
    assert seen[0].rot90 == 0 and seen[0].flip == 0.5 and seen[1].rot90 == 0.5


def test_phases_renaming_the_labels_own_names_is_said(pair, monkeypatch):
    """`phases=` over labels that name their values otherwise replaced those names unsaid."""
    img, _, sparse = pair
    _refuse_loading(monkeypatch)
    named = xr.DataArray(sparse, dims=("z", "y", "x"), attrs={"phases": ["pore", "cbd", "active"]})
    with pytest.warns(UserWarning, match=r"The labels name their values \['pore', 'cbd', 'active'\]; `phases` "
                                         r"\['pore', 'active', 'cbd'\] renames them"), \
            pytest.raises(AssertionError, match="the image was loaded"):
        bigseg.train(img, named, phases=["pore", "active", "cbd"], epochs=1)


def test_validation_scores_each_voxel_once():
    """3D validation cubes centred on labelled voxels overlap: the voxels they share were
    counted once per cube, weighting the validation IoU towards them."""
    from bigseg.train._data import patch_windows, score_windows

    class Pore(torch.nn.Module):  # says "pore" everywhere
        def forward(self, x):
            return torch.cat([torch.ones_like(x), torch.zeros_like(x), torch.zeros_like(x)], 1)

    labels = np.full((20, 24, 24), 255, np.uint8)
    labels[8:12, 10:14, 10:14] = 2
    labels[9, 11, 11] = 0
    windows = patch_windows(labels, (8, 8, 8), max_windows=24, seed=0)
    assert len(windows) == 24  # overlapping cubes around one small labelled block
    cm = score_windows(Pore(), labels.astype(np.float32), labels, windows, axis=0, n_classes=3,
                       device=torch.device("cpu"), ndim=3)
    assert cm.sum() == (labels != 255).sum() and cm[0, 0] == 1 and cm[2, 0] == 63


def test_a_phase_with_a_few_labelled_voxels_is_warned(pair):
    # three clicks of CBD train without a word, and the model then guesses CBD everywhere else
    img, _, sparse = pair
    clicks = np.where(sparse == 1, 255, sparse).astype(np.uint8)
    where = np.argwhere(sparse == 1)[:3]
    clicks[tuple(where.T)] = 1
    kw = dict(arch_kwargs=TINY, patch=(32, 32), epochs=1, steps_per_epoch=1, batch_size=2, augment=False,
              progress=False)
    with pytest.warns(UserWarning, match=r"few voxels of cbd \(3\), fewer than 100: the model learns little of it"):
        bigseg.train(img, clicks, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bigseg.train(img, sparse, **kw)  # thousands of each: quiet


def test_axis_is_named_as_in_the_measures_and_predict(pair, monkeypatch):
    """`train(axis="y")` was refused ("0, 1 or 2") while the measures and `predict(plane=)` name
    axes "z"/"y"/"x": either spelling passes the checks (the data is read next)."""
    img, _, sparse = pair
    _refuse_loading(monkeypatch)
    for axis in ("y", 1):
        with pytest.raises(AssertionError, match="the image was loaded"):
            bigseg.train(img, sparse, axis=axis, epochs=1)

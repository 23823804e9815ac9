r"""The ECG chapter's pipeline (``notebooks/ecg_sue.py``): SUE of Grad-CAM under test-time noise.

Steps, in the order the chapter runs them:

1. :func:`perturbation_sue` / :func:`sue_study` / :func:`sue_sweep` — perturb every test window
   ``draws`` times with a :mod:`uqxai_lib.perturb` noise model at a set SNR
   (``samplers.test_time``), explain every draw for the clean prediction and score the maps'
   repeatability with ``metrics.sue``; :func:`draw_inputs` reproduces the perturbed inputs;
2. :func:`correctness` — which windows count as correct (clean or majority-of-draws prediction);
3. :func:`table_rows` — the paper's Table 1 per perturbation (SUE of correct vs misclassified
   windows, Mann–Whitney p, AUROC); :func:`sue_vs_snr_frame` — SUE and accuracy against SNR;
4. :func:`pick_examples`, :func:`describe_rows`, :func:`headline_numbers` — examples to show, the
   prose lines and the results JSON record.

Plain functions on tensors and small records; figures are drawn by :mod:`uqxai_lib.viz.ecg`.
The paper's numbers (Salvi et al. 2025, Table 1, theirs) are the constants below.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, NamedTuple, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from .. import metrics, protocol, rules, saliency, samplers, stats
from ..cache import finite_or_none, round_sig
from ..perturb import PERTURBATION_LABELS, PERTURBATIONS, _check_kind, _check_snr, achieved_snr_db, make_perturbation

__all__ = [
    "CLAIM",
    "ECGSetup",
    "FS",
    "MIN_GROUP",
    "PAPER_CLASSIFICATION",
    "PAPER_EFFECT",
    "PAPER_TABLE1",
    "PRIMARY_KIND",
    "ROW_KEYS",
    "SETUP_KEYS",
    "PerturbationSUE",
    "achieved_snr",
    "baseline_rows",
    "baseline_scores",
    "beyond_baselines",
    "cascade_order",
    "clean_reference",
    "data_line",
    "correctness",
    "draw_inputs",
    "empty_rule_rows",
    "fidelity_by_class",
    "first_draws",
    "headline_numbers",
    "kind_record",
    "layer_table",
    "majority_vote",
    "own_target_maps",
    "perturbation_sue",
    "pick_examples",
    "prediction_rows",
    "primary_run",
    "region_occlusion",
    "setup",
    "strata_rows",
    "sue_study",
    "sue_sweep",
    "sue_variants",
    "sue_vs_snr_frame",
    "sweep_seed",
    "table_rows",
    "variant_rows",
    "verdict_ladder",
    "within_class",
]

#: Below this many windows in a group a comparison is undefined (the rule book's).
MIN_GROUP = rules.MIN_GROUP_SIZE

#: The paper's test-set results of the CNN-BiLSTM (percent), theirs, not ours.
PAPER_CLASSIFICATION = {"accuracy": 99.6, "sensitivity": 99.8, "specificity": 98.2}
#: Salvi et al. (2025), Table 1: SUE mean and SD on correctly classified and misclassified windows.
PAPER_TABLE1 = {
    "gaussian": (0.982, 0.040, 0.865, 0.277),
    "powerline": (0.967, 0.054, 0.815, 0.290),
    "baseline": (0.846, 0.106, 0.463, 0.288),
    "electrode": (0.834, 0.107, 0.476, 0.294),
}
#: The paper's effect per noise kind (theirs): mean SUE correct − misclassified of Table 1.
PAPER_EFFECT = {k: round(v[0] - v[2], 3) for k, v in PAPER_TABLE1.items()}
#: The chapter's one declared primary comparison: SUE of correct minus misclassified windows
#: (clean-prediction definition) under this perturbation; the other kinds are secondary.
PRIMARY_KIND = "gaussian"

#: The paper's claim (Salvi et al. 2025, section 4.1 and Table 1; theirs).
CLAIM = {
    "text": "Correct predictions come with more repeatable Grad-CAM explanations under test-time "
            "perturbation (higher SUE) than misclassifications.",
    "expected": "higher",
    "theirs": "SUE 0.982 ± 0.040 (correct) vs 0.865 ± 0.277 (misclassified), Gaussian noise, Table 1",
    "source": "salvi2025explainability",
}


ROW_KEYS = ("sue_correct_mean", "sue_correct_sd", "n_correct", "sue_mis_mean", "sue_mis_sd", "n_mis", "n_undefined",
            "effect", "ci95", "auroc", "auroc_ci95", "p", "verdict")


def _ci(ci: Sequence[float], digits: int = 3) -> str:
    lo, hi = (float(v) for v in ci)
    return "–" if not (np.isfinite(lo) and np.isfinite(hi)) else f"[{lo:.{digits}f}, {hi:.{digits}f}]"


def _f64(v) -> np.ndarray:
    """A tensor (any device) or array-like as a float64 NumPy array (lists stay float64)."""
    if isinstance(v, Tensor):
        return v.detach().cpu().double().numpy()
    return np.asarray(v, dtype=np.float64)


# ----------------------------------------------------------------------------------- setup
#: Sampling rate of the synthetic windows and of the resampled real records (Hz).
FS = 250.0
#: Seed offset of the extra test subjects (drawn from the same generator, never seen in training).
EXTRA_TEST_SEED = 1_000_003


class ECGSetup(NamedTuple):
    """The chapter's data and trained model, as :func:`setup` builds them (one cache key).

    ``data`` the whole data set the split was drawn from, ``train`` / ``val`` / ``test`` the
    subject-wise split (``test`` = the studied windows: held-out subjects plus the extra test
    subjects, at most ``max_test``), ``severity`` [len(test)] (0 healthy, 1 mild CAD, 2 marked CAD;
    ``None`` on real data), ``model`` (eval mode), ``layer`` (its Grad-CAM layer name),
    ``train_config`` (the training cache key), ``source`` ("synthetic" or the data directory),
    ``nstdb`` (MIT-BIH Noise Stress Test records when the data directory holds them, else ``None``).
    """

    data: object
    train: object
    val: object
    test: object
    severity: Tensor | None
    model: torch.nn.Module
    layer: str
    train_config: dict
    source: str
    nstdb: dict | None
    from_cache: bool
    test_key: dict


#: The parameters :func:`setup` reads (the notebook's parameters cell, or ``params.chapter_parameters``).
SETUP_KEYS = ("n_subjects", "windows_per_subject", "cad_fraction", "mild_fraction", "extra_test_subjects", "max_test",
              "data_dir", "max_windows_per_record", "fantasia_records", "incart_records", "incart_cad_records",
              "channels", "hidden", "epochs", "patience", "batch_size", "lr")


def _test_key(test) -> dict:
    import hashlib

    h = hashlib.sha256(test.x.detach().cpu().float().contiguous().numpy().tobytes())
    h.update(test.y.detach().cpu().numpy().tobytes())
    return {"n": len(test), "sha256": h.hexdigest()[:16]}


def _extra_test(params: Mapping, seed: int, first_group: int):
    from ..data.synthetic_ecg import make_synthetic_ecg

    n = int(params.get("extra_test_subjects") or 0)
    if n < 2:
        return None, None
    d, info = make_synthetic_ecg(n, int(params["windows_per_subject"]), cad_fraction=params["cad_fraction"],
                                 mild_fraction=params["mild_fraction"], seed=int(seed) + EXTRA_TEST_SEED,
                                 return_info=True)
    return dataclasses.replace(d, group=d.group + int(first_group)), info


def _concat(a, b):
    return dataclasses.replace(a, x=torch.cat([a.x, b.x]), y=torch.cat([a.y, b.y]), mask=torch.cat([a.mask, b.mask]),
                               group=torch.cat([a.group, b.group]))


def setup(params: Mapping, *, seed: int, device: torch.device | str = "cpu", progress: bool = False,
          member_seed: int | None = None) -> ECGSetup:
    """The chapter's data set, subject-wise split and trained CNN-BiLSTM from its parameters.

    Synthetic data (``make_synthetic_ecg``) unless ``params["data_dir"]`` / ``$UQXAI_DATA_DIR``
    holds Fantasia + INCART; train / validation / test split 60 / 20 / 20 % by subject with the
    class ratio kept. On synthetic data the test set also gets ``extra_test_subjects`` fresh subjects
    from the same generator (another seed; cheap: maps at inference, not training) so that the
    primary interval is narrow enough; then an evenly spaced subset of at most ``max_test``
    windows is studied. The model is trained through ``train.fit`` under one cache key
    (``train_config``), so the notebook, the robustness and the cross-study chapters share it.
    ``member_seed`` (not ``None``, not ``seed``): the same data and split, the model initialised and
    trained with that seed under the key plus ``member_seed`` (a member of a seed ensemble).
    """
    from .. import train
    from ..data.fantasia_incart import load_fantasia_incart
    from ..data.synthetic_ecg import make_synthetic_ecg, stratified_group_split
    from ..models.cnn_bilstm import CNNBiLSTM
    from ..perturb import load_nstdb
    from ..utils import pick_device, resolve_data_dir, seed_everything

    p = params
    dev = pick_device(device) if isinstance(device, str) else device
    seed_everything(int(seed))
    root = resolve_data_dir(p.get("data_dir"))
    severity = None
    if root is None:
        data, info = make_synthetic_ecg(p["n_subjects"], p["windows_per_subject"], cad_fraction=p["cad_fraction"],
                                        mild_fraction=p["mild_fraction"], seed=seed, return_info=True)
        data_config = dict(source="synthetic", n_subjects=p["n_subjects"], windows_per_subject=p["windows_per_subject"],
                           cad_fraction=p["cad_fraction"], mild_fraction=p["mild_fraction"], seed=seed)
        sev_all = info["severity"]
    else:
        data = load_fantasia_incart(root, max_windows_per_record=p["max_windows_per_record"],
                                    healthy_records=p.get("fantasia_records"), incart_records=p.get("incart_records"),
                                    cad_records=p.get("incart_cad_records"))
        data_config = dict(source=str(root), max_windows_per_record=p["max_windows_per_record"],
                           fantasia_records=p.get("fantasia_records"), incart_records=p.get("incart_records"),
                           incart_cad_records=p.get("incart_cad_records"))
        sev_all = None
    tr, va, te = stratified_group_split(data.group, data.y, [0.6, 0.2, 0.2], seed=seed)
    train_set, val_set, test_set = data.subset(tr), data.subset(va), data.subset(te)
    if sev_all is not None:
        severity = sev_all[te]
        extra, extra_info = _extra_test(p, seed, int(data.group.max()) + 1)
        if extra is not None:
            test_set = _concat(test_set, extra)
            severity = torch.cat([severity, extra_info["severity"]])
    if len(test_set) > int(p["max_test"]):  # an evenly spaced subset of the test windows (keeps the class mix)
        keep = torch.linspace(0, len(test_set) - 1, int(p["max_test"])).round().long()
        test_set = test_set.subset(keep)
        severity = None if severity is None else severity[keep]
    member = member_seed is not None and int(member_seed) != int(seed)
    if member:
        torch.manual_seed(int(member_seed))
    model = CNNBiLSTM(channels=p["channels"], hidden=p["hidden"])
    train_config = dict(data=data_config, model=model.config, epochs=p["epochs"], batch_size=p["batch_size"],
                        lr=p["lr"], patience=p["patience"], seed=seed)
    if member:
        train_config["member_seed"] = int(member_seed)
    fit = train.fit(model, train_set, val_set, epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"],
                    patience=p["patience"], seed=int(member_seed) if member else seed, device=dev,
                    name="ecg_cnn_bilstm", cache_config=train_config, progress=progress)
    return ECGSetup(data, train_set, val_set, test_set, severity, fit.model.eval(), fit.model.cam_layer_name,
                    train_config, "synthetic" if root is None else str(root), load_nstdb(root, fs=FS),
                    bool(fit.from_cache), _test_key(test_set))


def data_line(st: ECGSetup, device: torch.device | str | None = None) -> str:
    """One sentence: which data this run used (the phantom or the data directory), the split's
    sizes, the noise records and the device."""
    what = ("the embedded synthetic ECG phantom" if st.source == "synthetic"
            else f"Fantasia + INCART from `{st.source}`")
    noise = f"NSTDB records {', '.join(sorted(st.nstdb))} and synthetic noise" if st.nstdb else "synthetic noise models"
    dev = "" if device is None else f" on {device}"
    return (f"This run: {what}, {len(st.train)} training, {len(st.val)} validation and {len(st.test)} test windows "
            f"(split by subject), {noise}{dev}.")


def clean_reference(model: torch.nn.Module, x: Tensor, layer: str, *, chunk: int = 512) -> tuple[Tensor, Tensor]:
    """The clean windows' Grad-CAM maps [B, T] at the layer's resolution (the reference of every
    stack, explained for the clean prediction) and their softmax [B, C]."""
    from .. import train

    dev = next(model.parameters()).device
    maps = torch.cat([saliency.grad_cam(model, xb.to(dev), layer).cpu() for xb in x.split(chunk)])
    return maps, train.predict_proba(model, x, device=dev)


def primary_run(params: Mapping, *, seed: int, device: str | torch.device = "cpu") -> dict:
    """The chapter's primary comparison exactly as the notebook computes it: :func:`setup`, the
    Gaussian-noise study (:func:`perturbation_sue` with the notebook's seed, SNR, draws and top-q)
    and its :func:`kind_record` (``primary``: SUE correct − misclassified, interval over subjects).
    ``params`` = ``uqxai_lib.params.chapter_parameters("ecg_sue", profile)``. Returns
    ``{"primary": ..., "claim": ...}`` (JSON-safe); reads and writes no results file."""
    st = setup(params, seed=seed, device=device)
    dev = next(st.model.parameters()).device
    r = perturbation_sue(st.model, st.test.x.to(dev), st.layer, PRIMARY_KIND, params["table_snr_db"], params["draws"],
                         seed=seed, quantile=params["sue_quantile"], nstdb=st.nstdb)
    ref, probs = clean_reference(st.model, st.test.x, st.layer)
    rec = kind_record(r, ref, probs, st.test.y, groups=st.test.group, n_boot=params["n_boot"], seed=seed,
                      quantile=params["sue_quantile"])
    return {"primary": protocol.json_safe(primary_json(rec, PRIMARY_KIND)), "claim": dict(CLAIM)}


def primary_json(record: protocol.Assessment, kind: str = PRIMARY_KIND) -> dict:
    """The results record's ``primary``: the assess primary section of ``kind`` with its ``name``,
    the paper's effect (``paper_effect``, theirs, same units and sign) and the minimal detectable
    effect at these group sizes (``mde``)."""
    out = dict(record.primary)
    v = np.asarray(record.stability["jaccard"], float)
    c = np.asarray(record.prediction["correct"], bool)
    out["name"] = f"SUE correct − misclassified, {PERTURBATION_LABELS.get(kind, kind)}"
    out["paper_effect"] = PAPER_EFFECT.get(kind)
    out["mde"] = stats.mde(v, c)
    return out


# ----------------------------------------------------------------------------------- SUE study
class PerturbationSUE(NamedTuple):
    """Test-time-perturbation results of one perturbation kind for ``B`` windows.

    ``maps`` [S, B, T] Grad-CAM maps of the S perturbed draws (layer resolution), ``sue`` [B],
    ``clean_pred`` [B] (prediction on the clean window, also the explained class), ``draw_pred`` [S, B]
    (prediction on each perturbed draw), ``majority_pred`` [B] (most frequent draw prediction, ties to
    the clean prediction), ``flip_rate`` [B] (share of draws whose prediction differs from the clean one),
    ``draw_probs`` [S, B, C] (softmax of each draw; ``None`` in records cached before it was kept).
    """

    kind: str
    snr_db: float
    maps: Tensor
    sue: Tensor
    clean_pred: Tensor
    draw_pred: Tensor
    majority_pred: Tensor
    flip_rate: Tensor
    draw_probs: Tensor | None = None


def majority_vote(draw_pred: Tensor, fallback: Tensor, n_classes: int) -> Tensor:
    """Most frequent class over draws ``[S, B]``; ties go to ``fallback`` when it is among the tied
    classes, else to the lowest tied class.

    >>> majority_vote(torch.tensor([[0, 1], [1, 0], [1, 0], [0, 0]]), torch.tensor([1, 1]), 2).tolist()
    [1, 0]
    """
    counts = torch.nn.functional.one_hot(draw_pred, n_classes).sum(0)  # [B, C]
    top = counts.max(1, keepdim=True).values
    tied = counts == top
    fb_tied = tied.gather(1, fallback[:, None]).squeeze(1)
    return torch.where(fb_tied, fallback, tied.float().argmax(1))


def perturbation_sue(
    model: torch.nn.Module,
    x: Tensor,
    layer: torch.nn.Module | str,
    kind: str,
    snr_db: float,
    draws: int,
    *,
    seed: int,
    fs: float = FS,
    method: str = "grad_cam",
    quantile: float = rules.TOP_Q,
    chunk: int = 128,
    nstdb: Mapping[str, Tensor] | None = None,
) -> PerturbationSUE:
    """SUE of Grad-CAM maps over ``draws`` test-time perturbations of each window in ``x``.

    Every window is explained for its *clean* prediction (the target is fixed before perturbing),
    its ``draws`` noisy copies come from ``samplers.test_time`` with :func:`make_perturbation`, and
    SUE is the rule book's top-q Jaccard over pairs of draws at the layer's resolution
    (``metrics.sue(..., empty="skip")``, as :func:`uqxai_lib.protocol.stability` scores it: a pair
    with an empty region is undefined and skipped). Windows are processed in chunks of ``chunk``
    with one generator seeded by ``seed``, so results do not depend on the device.
    """
    perturb = make_perturbation(kind, snr_db, fs, nstdb=nstdb)
    gen = torch.Generator().manual_seed(int(seed))
    maps, sue, clean, dpred, dprob = [], [], [], [], []
    for xb in x.split(chunk):
        st = samplers.test_time(model, xb, layer, perturb, draws, method=method, generator=gen)
        m = st.maps.double().cpu()
        sue.append(metrics.sue(m, quantile=quantile, empty="skip").float())
        maps.append(m.float())
        clean.append(st.target.cpu())
        dpred.append(st.probs.argmax(-1).cpu())
        dprob.append(st.probs.float().cpu())
    maps_t, clean_t, dpred_t = torch.cat(maps, 1), torch.cat(clean), torch.cat(dpred, 1)
    n_classes = int(st.probs.shape[-1])
    return PerturbationSUE(
        kind=kind,
        snr_db=float(snr_db),
        maps=maps_t,
        sue=torch.cat(sue),
        clean_pred=clean_t,
        draw_pred=dpred_t,
        majority_pred=majority_vote(dpred_t, clean_t, n_classes),
        flip_rate=(dpred_t != clean_t[None]).float().mean(0),
        draw_probs=torch.cat(dprob, 1),
    )


def correctness(result: PerturbationSUE, y: Tensor, definition: str = "clean") -> Tensor:
    """Which windows count as correctly classified under test-time perturbation (bool [B]).

    ``"clean"``: the prediction on the clean window equals the label (the explained class);
    ``"majority"``: the most frequent prediction over the perturbed draws equals the label.
    """
    if definition == "clean":
        pred = result.clean_pred
    elif definition == "majority":
        pred = result.majority_pred
    else:
        raise ValueError(f"definition must be 'clean' or 'majority', got {definition!r}")
    return pred == y.to(pred.device)


def sue_study(
    model: torch.nn.Module,
    x: Tensor,
    layer: torch.nn.Module | str,
    kinds: tuple[str, ...] = PERTURBATIONS,
    snr_db: float | Mapping[str, float] = 10.0,
    draws: int = 10,
    *,
    seed: int = 0,
    **kw,
) -> dict[str, dict]:
    """:func:`perturbation_sue` for every kind (seed ``seed + index of kind``) as plain dicts.

    ``snr_db`` is one SNR for all kinds or a mapping kind -> SNR. The plain-dict form is what the
    notebook caches (``cache.cached``); rebuild tuples with ``PerturbationSUE(**d)``.
    """
    out = {}
    for i, kind in enumerate(kinds):
        snr = snr_db[kind] if isinstance(snr_db, Mapping) else snr_db
        out[kind] = perturbation_sue(model, x, layer, kind, snr, draws, seed=seed + i, **kw)._asdict()
    return out


def sweep_seed(seed: int, i_kind: int, j_snr: int) -> int:
    """Seed of the draws of kind number ``i_kind`` at SNR number ``j_snr`` in :func:`sue_sweep`.

    >>> sweep_seed(0, 1, 2)
    304
    """
    return int(seed) + 101 * (int(j_snr) + 1) + int(i_kind)


def sue_sweep(
    model: torch.nn.Module,
    x: Tensor,
    layer: torch.nn.Module | str,
    kinds: tuple[str, ...] = PERTURBATIONS,
    snrs: tuple[float, ...] = (0.0, 10.0, 20.0),
    draws: int = 10,
    *,
    seed: int = 0,
    keep_maps: bool = False,
    **kw,
) -> list[dict]:
    """:func:`perturbation_sue` for every (kind, SNR) pair: SUE against SNR, one record per pair.

    Each record is the plain-dict form of :class:`PerturbationSUE` plus ``seed`` (from
    :func:`sweep_seed`, so :func:`draw_inputs` can reproduce the perturbed inputs); ``maps`` is
    dropped unless ``keep_maps`` (the stacks of a long sweep are large). Records are ordered SNR by
    SNR, kinds within.

    >>> from torch import nn
    >>> m = nn.Sequential(nn.Conv1d(1, 2, 5), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(2, 2)).eval()
    >>> recs = sue_sweep(m, torch.randn(3, 1, 64), "1", ("gaussian",), (0.0, 20.0), 3, seed=0)
    >>> [(r["kind"], r["snr_db"], tuple(r["sue"].shape)) for r in recs]
    [('gaussian', 0.0, (3,)), ('gaussian', 20.0, (3,))]
    """
    for k in kinds:
        _check_kind(k)
    snrs = [_check_snr(s) for s in snrs]
    if not snrs:
        raise ValueError("snrs is empty; give at least one SNR in dB")
    out = []
    for j, snr in enumerate(snrs):
        for i, kind in enumerate(kinds):
            s = sweep_seed(seed, i, j)
            rec = perturbation_sue(model, x, layer, kind, snr, draws, seed=s, **kw)._asdict()
            if not keep_maps:
                rec.pop("maps")
            rec["seed"] = s
            out.append(rec)
    return out


def draw_inputs(
    x: Tensor,
    kind: str,
    snr_db: float,
    draws: int,
    *,
    seed: int,
    fs: float = FS,
    chunk: int = 128,
    nstdb: Mapping[str, Tensor] | None = None,
) -> Tensor:
    """The perturbed inputs ``[S, B, C, L]`` that :func:`perturbation_sue` explained with the same
    arguments (same ``seed``, ``fs``, ``chunk``, ``nstdb``): draw ``s`` of window ``b`` is
    ``result[s, b]``. Used to show the noisy trace beside its maps.

    >>> x = torch.randn(2, 1, 100)
    >>> tuple(draw_inputs(x, "baseline", 5.0, 3, seed=1).shape)
    (3, 2, 1, 100)
    """
    perturb = make_perturbation(kind, snr_db, fs, nstdb=nstdb)
    if int(draws) < 1:
        raise ValueError(f"draws must be a positive number of perturbed copies, got {draws!r}")
    gen = torch.Generator().manual_seed(int(seed))
    parts = []
    for xb in x.split(chunk):  # same generator order as perturbation_sue -> samplers.test_time
        parts.append(torch.stack([perturb(xb, gen) for _ in range(int(draws))]))
    return torch.cat(parts, 1)


def achieved_snr(clean: Tensor, noisy: Mapping[str, Tensor]) -> dict[str, float]:
    """SNR in dB actually achieved by each perturbed copy of one window, read back from the two
    windows as :func:`uqxai_lib.perturb.achieved_snr_db` defines it (the perturbed copy is
    re-standardised, so ``noisy - clean`` is not the noise).

    >>> x = torch.sin(torch.linspace(0, 20, 500)).double()
    >>> y = make_perturbation("gaussian", 6.0)(x.reshape(1, 1, -1), torch.Generator().manual_seed(0))[0, 0]
    >>> round(achieved_snr(x, {"a": y})["a"], 3)
    6.0
    """
    c = torch.as_tensor(clean).reshape(1, 1, -1).double()
    return {k: float(achieved_snr_db(c, torch.as_tensor(v).reshape(1, 1, -1).double())[0, 0]) for k, v in noisy.items()}


def first_draws(x: Tensor, records: Sequence[Mapping], *, fs: float = 250.0,
                nstdb: Mapping[str, Tensor] | None = None) -> dict[tuple[str, float], Tensor]:
    """The first perturbed draw ``[L]`` of one window ``x`` [1, C, L] (channel 0) for every record
    of :func:`sue_sweep` run on that window, keyed by ``(kind, snr_db)`` (reproduced with
    :func:`draw_inputs`; ``fs`` and ``nstdb`` must be those of the sweep)."""
    if x.dim() != 3 or x.shape[0] != 1:
        raise ValueError(f"first_draws takes one window: x must be [1, C, L], got {tuple(x.shape)}")
    return {(r["kind"], float(r["snr_db"])): draw_inputs(x.cpu(), r["kind"], float(r["snr_db"]), 1, seed=r["seed"],
                                                         fs=fs, nstdb=nstdb)[0, 0, 0]
            for r in records}


# ----------------------------------------------------------------------------------- tables and records
def kind_record(result: PerturbationSUE, reference: Tensor, clean_probs: Tensor, y: Tensor, *,
                groups: Tensor | None = None, masks: Tensor | None = None, model: torch.nn.Module | None = None,
                x: Tensor | None = None, layer: str | None = None, sanity: bool = False, n_boot: int = rules.N_BOOT,
                seed: int = 0, quantile: float = rules.TOP_Q) -> protocol.Assessment:
    """The :class:`uqxai_lib.protocol.Assessment` of one noise kind's stack (``score="jaccard"``:
    SUE), from :func:`uqxai_lib.protocol.evaluate` on the study's maps, the clean maps ``reference``
    [B, T] at the layer's resolution, the draws' and the clean softmax. With ``masks`` (and
    ``model``, ``x``) the fidelity sections, with ``sanity`` the cascading randomisation from the
    head down (:func:`cascade_order`), deletion / insertion in 0.1-s segments (:data:`SEGMENT`)."""
    if result.draw_probs is None:
        raise ValueError("the study result carries no draw_probs; rerun perturbation_sue (the cached entry is old)")
    return protocol.evaluate(result.maps, reference, result.draw_probs, clean_probs, y, target=result.clean_pred,
                             source="test_time", score="jaccard", q=quantile, groups=groups, masks=masks,
                             model=model, x=x, layer=layer, sanity=sanity,
                             sanity_modules=cascade_order(model) if sanity else None, fidelity_patch=SEGMENT,
                             n_boot=n_boot, seed=seed, config={"kind": result.kind, "snr_db": result.snr_db})


def _sd(v: np.ndarray) -> float:
    v = v[np.isfinite(v)]
    return float(np.std(v, ddof=1)) if v.size > 1 else float("nan")


def table_rows(records: Mapping[str, protocol.Assessment], correct: Mapping[str, Tensor] | None = None, *,
               groups: Tensor | None = None, primary_kind: str = PRIMARY_KIND, n_boot: int = rules.N_BOOT,
               seed: int = 0) -> dict[str, dict]:
    """Table 1 per noise kind: SUE (mean, SD) of correct and misclassified windows, the difference
    with its interval, AUROC and p from one bootstrap (the record's ``primary`` section, or
    :func:`uqxai_lib.protocol.primary_section` for another ``correct`` definition, e.g. the majority
    of draws), and the ``verdict``: the primary kind's from its interval, the others' from
    Holm-adjusted p (:func:`holm_labels`). Windows with an undefined SUE are left out and counted."""
    rows = {}
    for kind, rec in records.items():
        v = _f64(rec.stability["jaccard"])
        c = np.asarray(rec.prediction["correct"], bool) if correct is None else _f64(correct[kind]).astype(bool)
        prim = rec.primary if correct is None else protocol.primary_section(
            v, c, groups=None if groups is None else _f64(groups), score="jaccard", n_boot=n_boot, seed=seed)
        rows[kind] = {"sue_correct_mean": prim["mean_correct"], "sue_correct_sd": _sd(v[c]),
                      "n_correct": prim["n_correct"],
                      "sue_mis_mean": prim["mean_misclassified"], "sue_mis_sd": _sd(v[~c]),
                      "n_mis": prim["n_misclassified"],
                      "n_undefined": prim["n_undefined"], "effect": prim["effect"], "ci95": list(prim["ci95"]),
                      "auroc": prim["auroc"], "auroc_ci95": list(prim["auroc_ci95"]), "p": prim["p"],
                      "verdict": prim["verdict"], "reason": prim["reason"]}
    others = [k for k in rows if k != primary_kind]
    for k, lab, ph in zip(others, stats.holm_labels([rows[k]["effect"] for k in others],
                                                    [rows[k]["p"] for k in others]),
                          stats.holm([rows[k]["p"] for k in others])):
        rows[k].update(verdict=lab if rows[k]["verdict"] != "undefined" else "undefined", p_holm=ph)
    return rows


def sue_vs_snr_frame(records: Sequence[Mapping], y: Tensor | None = None, *,
                     definition: str = "majority") -> pd.DataFrame:
    """Long table of SUE against SNR: mean/SD SUE overall and per correctness group, and accuracy.

    ``records``: ``{kind, snr_db, sue [B], ...}`` as from ``perturb.sue_sweep``. With labels ``y``,
    a window is correct when its ``majority_pred`` (``definition="majority"``) or ``clean_pred``
    (``"clean"``) equals the label, and ``accuracy`` is the share of all perturbed draws
    (``draw_pred``) classified correctly; without ``y`` each record must carry ``correct`` [B] and
    ``accuracy`` is the share of correct windows.
    """
    if definition not in ("majority", "clean"):
        raise ValueError(f"definition must be 'majority' or 'clean', got {definition!r}")
    yy = None if y is None else _f64(y).astype(int)
    rows = []
    for r in records:
        s = _f64(r["sue"]).astype(float)
        if yy is not None:
            c = _f64(r[f"{definition}_pred"]).astype(int) == yy
            acc = float((_f64(r["draw_pred"]).astype(int) == yy[None]).mean())
        else:
            c = _f64(r["correct"]).astype(bool)
            acc = float(c.mean())
        rows.append({
            "kind": r["kind"], "snr_db": float(r["snr_db"]), "sue_mean": s.mean(),
            "sue_sd": s.std(ddof=1) if len(s) > 1 else 0.0,
            "sue_correct": s[c].mean() if c.any() else np.nan, "sue_mis": s[~c].mean() if (~c).any() else np.nan,
            "accuracy": acc, "n": len(s), "n_mis": int((~c).sum()),
        })
    return pd.DataFrame(rows).sort_values(["kind", "snr_db"], kind="stable").reset_index(drop=True)


def pick_examples(sue: Tensor, correct: Tensor) -> tuple[int | None, int | None]:
    """Index of the correct window with the highest SUE and of the misclassified one with the lowest."""
    s, c = torch.as_tensor(sue, dtype=torch.float64), torch.as_tensor(correct).bool()
    hi = int(torch.where(c, s, torch.full_like(s, -np.inf)).argmax()) if c.any() else None
    lo = int(torch.where(~c, s, torch.full_like(s, np.inf)).argmin()) if (~c).any() else None
    return hi, lo


def headline_numbers(classification: Mapping[str, float], rows: Mapping[str, Mapping[str, Mapping]],
                     **extra) -> dict:
    """JSON-ready headline numbers: accuracy, sensitivity, specificity, one row per perturbation
    (``ROW_KEYS``) per misclassification definition (``rows[definition][kind]``; the ``"clean"``
    definition goes under ``perturbations``, others under ``perturbations_<definition>``) and
    ``extra`` scalars. Floats are rounded to 6 significant digits, NaN (an empty group) becomes
    ``None``, ``None`` extras are dropped.

    >>> nan = float("nan")
    >>> r = {"n_correct": 3, "n_mis": 0, "n_undefined": 0, "sue_correct_mean": 0.5, "sue_correct_sd": 0.1,
    ...      "sue_mis_mean": nan, "sue_mis_sd": nan, "effect": nan, "ci95": [nan, nan], "auroc": nan,
    ...      "auroc_ci95": [nan, nan], "p": nan, "verdict": "undefined"}
    >>> h = headline_numbers({"accuracy": 1/3, "sensitivity": 1.0, "specificity": 0.0}, {"clean": {"gaussian": r}})
    >>> h["accuracy"], h["perturbations"]["gaussian"]["sue_mis_mean"]
    (0.333333, None)
    """
    out = {k: float(classification[k]) for k in ("accuracy", "sensitivity", "specificity")}
    for definition, per_kind in rows.items():
        key = "perturbations" if definition == "clean" else f"perturbations_{definition}"
        out[key] = {k: {kk: r[kk] for kk in ROW_KEYS} for k, r in per_kind.items()}
    out.update({k: v for k, v in extra.items() if v is not None})
    return finite_or_none(round_sig(out))


def empty_rule_rows(results: Mapping[str, PerturbationSUE], *, quantile: float = rules.TOP_Q) -> list[dict]:
    """Per noise kind: mean SUE when a pair of empty top regions counted as agreement (J = 1, the
    chapter's rule before the rule book) and under the rule book (such pairs skipped,
    ``metrics.sue(..., empty="skip")``; a window with no defined pair is left out), with the number
    of windows that hold an empty region and of those left out."""
    out = []
    for kind, r in results.items():
        m = r.maps.double()
        agree = _f64(metrics.sue(m, quantile=quantile, empty="agree"))
        rule = _f64(metrics.sue(m, quantile=quantile, empty="skip"))
        out.append({"kind": kind, "sue_agree": float(np.mean(agree)),
                    "sue_rule": float(np.nanmean(rule)) if np.isfinite(rule).any() else float("nan"),
                    "n_empty": int(_f64(metrics.empty_regions(m, quantile=quantile)).sum()),
                    "n_undefined": int((~np.isfinite(rule)).sum()), "n": len(rule)})
    return out


#: What the data are, for the verdict box (the phantom; the paper's real recordings).
PHANTOM = "synthetic single-lead ECG windows with a known ST–T region"
PAPER_DATA = "Fantasia + INCART (PhysioNet), 95,300 windows"


def verdict_ladder(primary: Mapping, *, added: Mapping | None, fidelity: Mapping | None, sanity: Mapping | None,
                   within: Mapping | None, robustness_path=None, source: str = "synthetic") -> dict:
    """The results record's ``verdict``: the eight rungs of :mod:`uqxai_lib.verdicts` read from this
    run's records (direction of the primary; SUE against the strongest prediction-only score; the
    maps in the ST–T mask; the cascading check; SUE within the predicted class; across training seeds
    and threads from the robustness record when it exists; our interval against the paper's
    Gaussian-noise effect, theirs) and the data line."""
    from .. import verdicts

    exp = CLAIM["expected"]
    rungs = [verdicts.direction(primary, exp),
             verdicts.beyond_baselines(added, score_name="SUE"),
             verdicts.maps_right(fidelity or None),
             verdicts.sanity(sanity),
             verdicts.within_class(within, exp),
             *verdicts.robustness_rungs("ecg_sue", exp, path=robustness_path),
             verdicts.paper_effect(primary, primary.get("paper_effect"), mde=primary.get("mde"))]
    data = verdicts.data_line(PHANTOM, PAPER_DATA) if source == "synthetic" else \
        f"Fantasia + INCART from {source}; the paper used {PAPER_DATA}"
    return verdicts.ladder(CLAIM, data, rungs)


# ----------------------------------------------------------------------------------- SUE variants
#: Top-region sizes of the variant sweep (share of samples kept: 5, 10, 20, 30 %).
TOP_SHARES = (0.05, 0.10, 0.20, 0.30)


def own_target_maps(model: torch.nn.Module, x: Tensor, layer: torch.nn.Module | str, result: PerturbationSUE, *,
                    seed: int, fs: float = 250.0, chunk: int = 128, nstdb: Mapping[str, Tensor] | None = None,
                    method: str = "grad_cam") -> Tensor:
    """Maps ``[S, B, T]`` of the draws of ``result`` (from :func:`perturbation_sue` with the same
    ``seed``, ``fs``, ``chunk``, ``nstdb``) when every draw is explained for **its own** prediction
    instead of the clean one. Draws whose prediction equals the clean one keep their map; the others
    are recomputed on the reproduced input (:func:`draw_inputs`)."""
    maps = result.maps.clone()
    flip = result.draw_pred != result.clean_pred[None]
    if not bool(flip.any()):
        return maps
    inputs = draw_inputs(x.cpu(), result.kind, result.snr_db, result.draw_pred.shape[0], seed=seed, fs=fs,
                         chunk=chunk, nstdb=nstdb)
    dev = next(model.parameters()).device
    for s in range(flip.shape[0]):
        idx = torch.nonzero(flip[s]).flatten()
        if len(idx):
            m = saliency.explain(model, inputs[s, idx].to(dev), layer, method=method,
                                 target=result.draw_pred[s, idx].to(dev))
            maps[s, idx] = m.float().cpu()
    return maps


def sue_variants(maps: Tensor, clean_map: Tensor, own_maps: Tensor | None = None, *,
                 shares: Sequence[float] = TOP_SHARES) -> list[dict]:
    """Per-window SUE under every variant: ``reference`` "pairs" (mean Jaccard over pairs of
    noisy maps, the chapter's SUE) or "clean" (each noisy map against the clean map); top region
    ``q`` in ``shares``; ``target`` "clean" (fixed from the clean prediction) or "own" (each draw's
    own prediction, when ``own_maps`` is given). Maps [S, B, T] and ``clean_map`` [B, T] at the
    layer's resolution, scored under the rule book (``metrics.sue(..., empty="skip")``); windows
    with nothing defined are NaN and counted in ``n_empty``. Returns ``[{reference, q, target, sue [B], n_empty}]``."""
    stacks = {"clean": maps} if own_maps is None else {"clean": maps, "own": own_maps}
    out = []
    for target, st in stacks.items():
        for reference in ("pairs", "clean"):
            for q in shares:
                s = metrics.sue(st.double(), quantile=1.0 - float(q), empty="skip",
                                reference=clean_map.double() if reference == "clean" else None)
                out.append({"reference": reference, "q": float(q), "target": target, "sue": s.float(),
                            "n_empty": int(s.isnan().sum())})
    return out


def _auroc_row(values, correct, groups, n_boot: int, seed: int) -> dict:
    """AUROC (correct vs misclassified) with its interval and the verdict of the rule book
    (:func:`uqxai_lib.protocol.primary_section`: "undefined" below 5 windows in a group)."""
    pr = protocol.primary_section(_f64(values), _f64(correct).astype(bool),
                                  groups=None if groups is None else _f64(groups),
                                  n_boot=n_boot, seed=seed)
    return {"auroc": pr["auroc"], "auroc_ci95": list(pr["auroc_ci95"]), "n_correct": pr["n_correct"],
            "n_mis": pr["n_misclassified"], "verdict": pr["verdict"], "reason": pr["reason"]}


def variant_rows(variants: Sequence[Mapping], correct: Tensor, groups: Tensor | None = None, *,
                 n_boot: int = 2000, seed: int = 0) -> list[dict]:
    """AUROC of SUE (correct vs misclassified) with its interval for every variant of
    :func:`sue_variants`: ``[{reference, q, target, auroc, auroc_ci95, n_empty, ...}]``."""
    return [{"reference": v["reference"], "q": v["q"], "target": v["target"], "n_empty": int(v["n_empty"]),
             **_auroc_row(v["sue"], correct, groups, n_boot, seed)} for v in variants]


# ----------------------------------------------------------------------------------- prediction-only baselines
def baseline_scores(record: protocol.Assessment) -> dict[str, Tensor]:
    """The prediction-only scores of an assess record's ``prediction`` section, each oriented so
    that higher means "more likely correct" (like SUE): ``flip_rate`` (minus the share of draws
    whose prediction differs from the clean one), ``margin`` (top-1 minus top-2 of the draws' mean
    softmax) and ``entropy`` (minus the predictive entropy of that mean)."""
    p = record.prediction
    return {"flip_rate": -torch.tensor(p["flip_rate"], dtype=torch.float64),
            "margin": torch.tensor(p["margin"], dtype=torch.float64),
            "entropy": -torch.tensor(p["entropy"], dtype=torch.float64)}


def baseline_rows(scores: Mapping[str, Tensor], correct: Tensor, groups: Tensor | None = None, *,
                  n_boot: int = 2000, seed: int = 0) -> dict[str, dict]:
    """``{name: {auroc, auroc_ci95, ...}}`` of each score for correct vs misclassified windows."""
    return {k: _auroc_row(s, correct, groups, n_boot, seed) for k, s in scores.items()}


def beyond_baselines(sue: Tensor, scores: Mapping[str, Tensor], correct: Tensor, groups: Tensor | None = None, *,
                     n_boot: int = 2000, seed: int = 0) -> dict:
    """Does SUE add to the **strongest** prediction-only score, out of sample?
    :func:`uqxai_lib.stats.added_value` on the oriented baselines (:func:`baseline_scores`)."""
    return stats.added_value(_f64(sue), {k: _f64(v) for k, v in scores.items()}, _f64(correct).astype(bool),
                             groups=None if groups is None else _f64(groups), n_boot=n_boot, seed=seed)


# ----------------------------------------------------------------------------------- confounding
SEVERITY_NAMES = {0: "healthy", 1: "mild CAD", 2: "marked CAD"}


def strata_rows(sue: Tensor, correct: Tensor, severity: Tensor, groups: Tensor | None = None, *,
                n_boot: int = 2000, seed: int = 0) -> list[dict]:
    """AUROC of SUE for correct vs misclassified windows *within* each generator severity stratum
    (0 healthy, 1 mild CAD = the ambiguous subjects, 2 marked CAD) and within the CAD class as a
    whole: ``[{severity, n_correct, n_mis, auroc, auroc_ci95, verdict, reason}]`` ("undefined" with
    its reason where a stratum has fewer than 5 windows in a group)."""
    s, c, sev = _f64(sue), _f64(correct).astype(bool), _f64(severity).astype(int)
    g = None if groups is None else _f64(groups)
    cells = [(SEVERITY_NAMES.get(v, str(v)), sev == v) for v in sorted(set(sev.tolist()))]
    cells.append(("CAD (mild + marked)", sev > 0))
    return [{"severity": name, **_auroc_row(s[m], c[m], None if g is None else g[m], n_boot, seed)}
            for name, m in cells]


# ----------------------------------------------------------------------------------- within the predicted class
def within_class(sue: Tensor, correct: Tensor, pred: Tensor, y: Tensor, groups: Tensor | None = None, *,
                 classes: Sequence[str] = ("healthy", "CAD"), n_boot: int = 2000, seed: int = 0) -> dict:
    """Does SUE tell correct from misclassified windows *within* each predicted class?

    ``cells``: mean ± SD of SUE per true × predicted class (:func:`prediction_rows`); ``rows``: per
    predicted class the AUROC of SUE (correct vs misclassified) with its interval over subjects,
    "undefined" with the reason below 5 windows in a group; ``pooled``:
    :func:`uqxai_lib.stats.stratified_auroc` (pairs compared only inside a predicted class, so a
    score that only tracks the class scores 0.5) with its interval and verdict.
    """
    s, c, p = _f64(sue), _f64(correct).astype(bool), _f64(pred).astype(int)
    g = None if groups is None else _f64(groups)
    rows = []
    for k in range(len(classes)):
        m = p == k
        rows.append({"predicted": classes[k], **_auroc_row(s[m], c[m], None if g is None else g[m], n_boot, seed)})
    pooled = stats.stratified_auroc(s, c, p, groups=g, n_boot=n_boot, seed=seed)
    return {"cells": prediction_rows(sue, pred, y, classes=classes), "rows": rows, "pooled": pooled}


def within_class_json(rec: Mapping | None) -> dict | None:
    """The ``within_class`` record of the results JSON (the same dict; NaN -> None on writing)."""
    return None if rec is None else {"cells": list(rec["cells"]), "rows": list(rec["rows"]),
                                     "pooled": dict(rec["pooled"])}


# ----------------------------------------------------------------------------------- fidelity and sanity
#: Length of the segments that deletion / insertion remove or restore (samples; 25 = 0.1 s at 250 Hz).
SEGMENT = 25


def cascade_order(model: torch.nn.Module) -> list[str]:
    """Modules of a :class:`~uqxai_lib.models.cnn_bilstm.CNNBiLSTM` from the head down: ``fc``,
    ``lstm``, then the Conv1d blocks last to first (the cascading randomisation order)."""
    blocks = [f"features.{i}" for i, m in enumerate(model.features) if isinstance(m, torch.nn.Sequential)]
    return ["fc", "lstm", *reversed(blocks)]


def fidelity_by_class(reference: Tensor, masks: Tensor, y: Tensor, groups: Tensor | None = None, *,
                      classes: Sequence[str] = ("healthy", "CAD"), n_boot: int = rules.N_BOOT, seed: int = 0) -> dict:
    """The rule book's fidelity section (:func:`uqxai_lib.protocol.fidelity_section`, no curves)
    per true class: ``{class: {mass_in_mask, mass_in_mask_ci95, chance, pointing_game, iou_top_q}}``."""
    out, yy = {}, torch.as_tensor(y)
    for c in sorted(set(yy.tolist())):
        m = yy == c
        f = protocol.fidelity_section(reference[m], masks[m], groups=None if groups is None else groups[m],
                                      n_boot=n_boot, seed=seed)
        out[classes[c]] = {k: f[k] for k in ("mass_in_mask", "mass_in_mask_ci95", "chance", "pointing_game",
                                             "iou_top_q", "n_items")}
    return out


FIDELITY_KEYS = ("mass_in_mask", "mass_in_mask_ci95", "chance", "pointing_game", "iou_top_q", "deletion_auc",
                 "deletion_auc_random", "insertion_auc", "insertion_auc_random", "n_items")


def fidelity_json(record: protocol.Assessment) -> dict | None:
    """The results record's ``fidelity``: the assess fidelity section without per-window arrays."""
    f = record.fidelity
    return None if not f else {k: f[k] for k in FIDELITY_KEYS if k in f}


def stability_counts(record: protocol.Assessment) -> dict:
    """The stability section's counts (empty regions, undefined scores) and its rule text."""
    return {k: v for k, v in record.stability.items() if k not in ("rho", "jaccard")}


def layer_table(model: torch.nn.Module, x: Tensor, y: Tensor, mask: Tensor, layers: Sequence[str], *, snr_db: float,
                draws: int, seed: int, quantile: float = rules.TOP_Q, groups: Tensor | None = None, fs: float = FS,
                nstdb: Mapping[str, Tensor] | None = None, kind: str = PRIMARY_KIND, n_boot: int = 2000) -> list[dict]:
    """Which Grad-CAM layer lands on the evidence and how stable is it? Per layer: map resolution
    and the :func:`kind_record` of ``kind`` on ``x`` (fidelity of the clean maps: mass in the ST–T
    mask against chance, pointing game; mean SUE; AUROC of SUE for correct vs misclassified)."""
    rows = []
    dev = next(model.parameters()).device
    probs = torch.softmax(model(x.to(dev)).detach().double(), -1).cpu()
    for layer in layers:
        r = perturbation_sue(model, x.to(dev), layer, kind, snr_db, draws, seed=seed, quantile=quantile, fs=fs,
                             nstdb=nstdb)
        ref = saliency.grad_cam(model, x.to(dev), layer).cpu()
        rec = kind_record(r, ref, probs, y, groups=groups, masks=mask, n_boot=n_boot, seed=seed, quantile=quantile)
        f, p = rec.fidelity, rec.primary
        rows.append({"layer": layer, "resolution": int(ref.shape[-1]), "mass_in_mask": f["mass_in_mask"],
                     "chance": f["chance"], "pointing_game": f["pointing_game"],
                     "sue_mean": float(np.nanmean(rec.stability["jaccard"])), "sue_auroc": p["auroc"],
                     "sue_auroc_ci95": list(p["auroc_ci95"]), "n_mis": p["n_misclassified"], "verdict": p["verdict"]})
    return rows


@torch.no_grad()
def region_occlusion(model: torch.nn.Module, x: Tensor, mask: Tensor, y: Tensor, *,
                     classes: Sequence[str] = ("healthy", "CAD"), seed: int = 0) -> list[dict]:
    """What evidence does the model use? Per true class: the mean probability of the true class on
    the clean windows, with the ST–T ``mask`` samples set to 0 (the standardised mean), with every
    *other* sample set to 0, and with a random set of samples of the mask's size set to 0 (same count
    per window). If occluding the mask hurts no more than occluding random samples, the model's
    evidence is not (only) where the generator put it."""
    dev = next(model.parameters()).device
    g = torch.Generator().manual_seed(int(seed))
    m = mask.bool()
    rnd = torch.zeros_like(m)
    for i in range(len(m)):
        k = int(m[i].sum())
        rnd[i, torch.randperm(m.shape[-1], generator=g)[:k]] = True

    def p_true(xx):
        out = []
        for lo in range(0, len(xx), 256):
            pr = torch.softmax(model(xx[lo:lo + 256].to(dev)).double(), -1).cpu()
            out.append(pr.gather(1, y[lo:lo + 256, None].long())[:, 0])
        return torch.cat(out)

    zero = lambda keep: torch.where(keep[:, None], x, torch.zeros_like(x))
    p = {"clean": p_true(x), "mask occluded": p_true(zero(~m)), "outside occluded": p_true(zero(m)),
         "random occluded": p_true(zero(~rnd))}
    rows = []
    for c in sorted(set(y.tolist())):
        sel = y == c
        rows.append({"class": classes[c], "n": int(sel.sum()), **{k: float(v[sel].mean()) for k, v in p.items()}})
    return rows


def prediction_rows(sue: Tensor, clean_pred: Tensor, y: Tensor, *, classes: Sequence[str] = ("healthy",
                                                                                             "CAD")) -> list[dict]:
    """Mean and SD of SUE in every (true class, predicted class) cell: does SUE follow the *explained*
    (predicted) class rather than correctness? ``[{true, predicted, n, sue_mean, sue_sd}]``."""
    s, p, t = _f64(sue), _f64(clean_pred).astype(int), _f64(y).astype(int)
    rows = []
    for a in sorted(set(t.tolist())):
        for b in range(len(classes)):
            m = (t == a) & (p == b) & np.isfinite(s)
            rows.append({"true": classes[a], "predicted": classes[b], "n": int(m.sum()),
                         "sue_mean": float(s[m].mean()) if m.any() else float("nan"),
                         "sue_sd": float(s[m].std(ddof=1)) if m.sum() > 1 else float("nan")})
    return rows



"""Zero-shot stitching: a property head fitted on one model's coordinates, applied unchanged to another's.

A head (closed-form ridge, or a small seeded MLP) is fitted on model A's features of the training
structures and scored on model B's features of the test structures. In the shared anchor space
every model has the same columns (cosine to the same anchor atoms), so A's head can read B's
coordinates; in the raw latent spaces it cannot (the columns mean different things, and the widths
usually differ), which makes the raw space the baseline that cannot transfer.

Targets are per structure (regression on the mean-pooled atom coordinates: formation energy, band
gap, ...) or per atom (classification: element, periodic-table group). The train/test split is by
structure, seeded, so atoms of one structure never sit on both sides. Ridge is solved from streamed
float64 moments (``X^T X``, ``X^T Y``), so memory grows with the width, not with the atom count;
its regularisation is chosen by grouped cross-validation on the training structures.

Every score comes with a structure bootstrap over the test structures: the fitted head and its
predictions stay fixed, the test structures are drawn with replacement (the rows of a structure
together), and the score is recomputed from per-structure sums of the errors, the truth and the
correct predictions, so a replicate costs one weighted sum, not a prediction.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import dask
import numpy as np
import xarray as xr

from platonic.compare.bootstrap import INTERVAL, structure_counts
from platonic.settings import SimilaritySettings, TransferSettings

CHUNK = 16384
HEADS = ("ridge", "mlp")
ATOM_TARGETS = ("element", "group")
PROBE_METRICS = ("mae", "r2", "accuracy")
ESTIMATES = ("score", "standard_error", "ci_low", "ci_high")  # the score and its structure-bootstrap interval
KINDS = {False: "structure regression", True: "atom classification"}


# ----------------------------------------------------------------------------------------------
# targets and splits


def held_out_mask(structure_index: np.ndarray, test_fraction: float, seed: int) -> np.ndarray:
    """Boolean test mask over atoms (or structures): a seeded ``test_fraction`` of the distinct
    structures in ``structure_index (N,)``, each structure whole on one side of the split."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    structures = np.unique(structure_index)
    if len(structures) < 2:
        raise ValueError("a structure split needs at least two structures")
    n_test = min(max(int(round(test_fraction * len(structures))), 1), len(structures) - 1)
    chosen = np.random.default_rng(seed).choice(structures, size=n_test, replace=False)
    return np.isin(structure_index, chosen)


def pool_by_structure(x: np.ndarray, structure_index: np.ndarray, n_structures: int, chunk: int = CHUNK) -> np.ndarray:
    """Mean of the rows of ``x (N, d)`` per structure -> ``(n_structures, d)`` float64, streamed over
    row chunks; a structure without rows is NaN."""
    totals = np.zeros((n_structures, x.shape[1]))
    for start in range(0, len(x), chunk):
        np.add.at(
            totals, structure_index[start : start + chunk], np.asarray(x[start : start + chunk], dtype=np.float64)
        )
    counts = np.bincount(structure_index, minlength=n_structures).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return totals / counts[:, None]


# ----------------------------------------------------------------------------------------------
# ridge from streamed moments


@dataclass
class LinearHead:
    """``y = (x - offset) @ coef + intercept``; ``classes`` set for a one-vs-rest ridge classifier."""

    coef: np.ndarray  # (d, c)
    intercept: np.ndarray  # (c,)
    offset: np.ndarray  # (d,)
    alpha: float  # absolute ridge penalty used
    classes: np.ndarray | None = None

    def decision(self, x: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
        out = np.empty((len(x), self.coef.shape[1]))
        for start in range(0, len(x), chunk):
            out[start : start + chunk] = (
                np.asarray(x[start : start + chunk], dtype=np.float64) - self.offset
            ) @ self.coef
        return out + self.intercept

    def predict(self, x: np.ndarray) -> np.ndarray:
        scores = self.decision(x)
        if self.classes is not None:
            return self.classes[np.argmax(scores, axis=1)]
        return scores[:, 0]


def _augmented_moments(x, y, rows, offset, classes=None, chunk=CHUNK):
    """``A = Xa^T Xa``, ``B = Xa^T Y``, ``yy = sum Y^2`` over ``rows`` with ``Xa = [x - offset, 1]``;
    with ``classes``, ``Y`` is the +-1 one-hot coding of the labels ``y (N,)``, built chunk by chunk."""
    d = x.shape[1]
    c = len(classes) if classes is not None else y.shape[1]
    a, b, yy = np.zeros((d + 1, d + 1)), np.zeros((d + 1, c)), 0.0
    for start in range(0, len(rows), chunk):
        take = rows[start : start + chunk]
        xa = np.hstack([np.asarray(x[take], dtype=np.float64) - offset, np.ones((len(take), 1))])
        if classes is None:
            ya = np.asarray(y[take], dtype=np.float64)
        else:
            ya = np.where(np.asarray(y[take])[:, None] == classes[None, :], 1.0, -1.0)
        a += xa.T @ xa
        b += xa.T @ ya
        yy += float(np.sum(ya * ya))
    return a, b, yy


def _solve(a: np.ndarray, b: np.ndarray, alpha: float) -> np.ndarray:
    penalty = np.full(len(a), alpha)
    penalty[-1] = 0.0  # the intercept is not penalised
    return np.linalg.solve(a + np.diag(penalty), b)


def _column_mean(x: np.ndarray, rows: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    total = np.zeros(x.shape[1])
    for start in range(0, len(rows), chunk):
        total += np.asarray(x[rows[start : start + chunk]], dtype=np.float64).sum(axis=0)
    return total / len(rows)


def fit_ridge(x: np.ndarray, y: np.ndarray, alpha: float, rows: np.ndarray | None = None) -> LinearHead:
    """Ridge regression with an unpenalised intercept, ``min ||y - X w - b||^2 + alpha ||w||^2``
    (sklearn's ``Ridge(alpha)``), from float64 moments streamed over ``rows`` of ``x (N, d)``;
    ``y (N,)`` or ``(N, c)``."""
    y2 = y.reshape(len(y), -1)
    rows = np.arange(len(x)) if rows is None else np.asarray(rows)
    offset = _column_mean(x, rows)
    a, b, _ = _augmented_moments(x, y2, rows, offset)
    w = _solve(a, b, alpha)
    return LinearHead(coef=w[:-1], intercept=w[-1], offset=offset, alpha=alpha)


def select_ridge(
    x: np.ndarray,
    y: np.ndarray,
    rows: np.ndarray,
    groups: np.ndarray,
    relative_alphas: tuple[float, ...],
    folds: int,
    seed: int,
    classes: np.ndarray | None = None,
) -> tuple[LinearHead, float]:
    """Ridge on ``rows`` with its penalty chosen by ``folds``-fold cross-validation over ``groups``
    (structures, whole): ``alpha = relative * trace(Xc^T Xc) / d`` (relative to the mean per-column
    sum of squares), the candidate of least validation squared error, refitted on all ``rows``.
    Every fold's moments are streamed once; each candidate costs only (d+1)^2 solves.
    With ``classes``, ``y (N,)`` holds labels and the head is a one-vs-rest ridge classifier on
    their +-1 coding. Returns the head and the chosen relative alpha."""
    y2 = y if classes is not None else y.reshape(len(y), -1)
    offset = _column_mean(x, rows)
    unique = np.unique(groups[rows])
    folds = max(2, min(folds, len(unique)))
    fold_of_group = np.random.default_rng(seed).permutation(len(unique)) % folds
    fold_of_row = fold_of_group[np.searchsorted(unique, groups[rows])]
    parts = [_augmented_moments(x, y2, rows[fold_of_row == f], offset, classes) for f in range(folds)]
    a = sum(p[0] for p in parts)
    b = sum(p[1] for p in parts)
    d = x.shape[1]
    scale = max(np.trace(a[:d, :d] - np.outer(a[:d, d], a[:d, d]) / a[d, d]) / max(d, 1), 1e-300)
    errors = []
    for relative in relative_alphas:
        sse = 0.0
        for a_f, b_f, yy_f in parts:
            w = _solve(a - a_f, b - b_f, relative * scale)
            sse += yy_f - 2 * float(np.sum(w * b_f)) + float(np.sum(w * (a_f @ w)))
        errors.append(sse)
    best = float(relative_alphas[int(np.argmin(errors))])
    w = _solve(a, b, best * scale)
    return LinearHead(coef=w[:-1], intercept=w[-1], offset=offset, alpha=best * scale, classes=classes), best


# ----------------------------------------------------------------------------------------------
# heads and scores


NORMALISATIONS = ("none", "centre", "standardise")


def normalise_columns(x: np.ndarray, how: str, chunk: int = CHUNK) -> np.ndarray:
    """``x (N, d)`` with each column centred (``centre``) or also scaled to unit variance
    (``standardise``) by its own statistics over all N rows; float32. Unsupervised and per model,
    so a target model is normalised without its labels or any pairing with the source."""
    if how not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {how!r}; use one of {', '.join(NORMALISATIONS)}")
    if how == "none":
        return x
    total, squares = np.zeros(x.shape[1]), np.zeros(x.shape[1])
    for start in range(0, len(x), chunk):
        block = np.asarray(x[start : start + chunk], dtype=np.float64)
        total += block.sum(axis=0)
        squares += np.einsum("ij,ij->j", block, block)
    mean = total / len(x)
    scale = np.sqrt(np.maximum(squares / len(x) - mean**2, 0.0)) if how == "standardise" else np.ones_like(mean)
    scale[scale == 0] = 1.0
    out = np.empty(x.shape, dtype=np.float32)
    for start in range(0, len(x), chunk):
        out[start : start + chunk] = (np.asarray(x[start : start + chunk], dtype=np.float64) - mean) / scale
    return out


def _fit_head(head, x, y, rows, groups, classify, settings):
    """A fitted predictor ``f(x_rows) -> predictions`` and the chosen relative ridge alpha (NaN for MLP)."""
    if head == "ridge":
        classes = np.unique(y[rows]) if classify else None
        fitted, relative = select_ridge(
            x, y, rows, groups, settings.ridge_alphas, settings.cv_folds, settings.seed, classes
        )
        return fitted.predict, relative
    if head == "mlp":
        from sklearn.neural_network import MLPClassifier, MLPRegressor
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        rng = np.random.default_rng(settings.seed)
        take = (
            rows
            if len(rows) <= settings.mlp_max_samples
            else np.sort(rng.choice(rows, settings.mlp_max_samples, replace=False))
        )
        options = dict(
            hidden_layer_sizes=settings.mlp_hidden, max_iter=settings.mlp_max_iter, random_state=settings.seed
        )
        features = np.asarray(x[take], dtype=np.float64)
        if classify:
            model = make_pipeline(StandardScaler(), MLPClassifier(**options)).fit(features, y[take])
            return (lambda z: model.predict(np.asarray(z, dtype=np.float64))), np.nan
        mean, std = float(np.mean(y[take])), float(np.std(y[take])) or 1.0
        model = make_pipeline(StandardScaler(), MLPRegressor(**options)).fit(features, (y[take] - mean) / std)
        return (lambda z: model.predict(np.asarray(z, dtype=np.float64)) * std + mean), np.nan
    raise ValueError(f"unknown head {head!r}; use one of {', '.join(HEADS)}")


def structure_sums(
    prediction: np.ndarray, truth: np.ndarray, structure: np.ndarray, n_structures: int, classify: bool
) -> np.ndarray:
    """Per-structure sufficient statistics of the scores, summed over the rows of each structure
    (``structure (n_rows,)``, 0..n_structures-1): ``(n_structures, 2)`` row count and correct predictions
    (classification) or ``(n_structures, 5)`` row count, |e|, e^2, t and t^2 with ``e = prediction - truth``
    and ``t`` the truth less its mean over all rows (regression; the shift keeps R^2's total sum of squares
    from cancelling). Any weighting of structures (a bootstrap replicate's counts) is a weighted sum of rows."""
    if classify:
        columns = [np.ones(len(truth)), (prediction == truth).astype(np.float64)]
    else:
        error, centred = prediction - truth, truth - truth.mean()
        columns = [np.ones(len(truth)), np.abs(error), error**2, centred, centred**2]
    return np.stack([np.bincount(structure, weights=c, minlength=n_structures) for c in columns], axis=1)


def scores_of_sums(sums: np.ndarray, classify: bool) -> dict[str, np.ndarray]:
    """MAE and R^2 (regression) or accuracy (classification) from ``sums (..., k)``, weighted sums over
    structures of ``structure_sums``; NaN where a metric does not apply, and R^2 NaN where the truth is constant."""
    n = sums[..., 0]
    missing = np.full(n.shape, np.nan)
    if classify:
        return {"mae": missing, "r2": missing, "accuracy": sums[..., 1] / n}
    total = sums[..., 4] - sums[..., 3] ** 2 / n
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = np.where(total > 0, 1.0 - sums[..., 2] / total, np.nan)
    return {"mae": sums[..., 1] / n, "r2": r2, "accuracy": missing}


def scores(prediction: np.ndarray, truth: np.ndarray, classify: bool) -> dict[str, float]:
    """MAE and R^2 (regression) or accuracy (classification) of ``prediction`` against ``truth``."""
    sums = structure_sums(prediction, truth, np.zeros(len(truth), dtype=np.int64), 1, classify)[0]
    return {metric: float(value) for metric, value in scores_of_sums(sums, classify).items()}


def bootstrap_intervals(sums: np.ndarray, draws: np.ndarray, classify: bool) -> dict[str, tuple[float, float, float]]:
    """Structure-bootstrap standard error and 95 % percentile interval of every score: ``sums (S, k)`` of
    ``structure_sums`` over the S test structures, ``draws (B, S)`` how often each replicate draws each
    (``platonic.compare.bootstrap.structure_counts``). Each replicate's score is ``scores_of_sums(draws @ sums)``;
    over the replicates where it is defined, the standard error is their standard deviation (ddof 1) and the
    interval their 2.5 and 97.5 percentiles (``np.percentile``, linear interpolation). NaN with fewer than two
    defined replicates (no bootstrap, or a metric that does not apply)."""
    intervals = {}
    for metric, replicates in scores_of_sums(draws @ sums, classify).items():
        finite = replicates[np.isfinite(replicates)]
        if finite.size < 2:
            intervals[metric] = (np.nan, np.nan, np.nan)
            continue
        low, high = np.percentile(finite, INTERVAL)
        intervals[metric] = (float(np.std(finite, ddof=1)), float(low), float(high))
    return intervals


def _evaluate(predict, x, rows, truth, classify, structure, draws) -> dict[str, tuple[float, float, float, float]]:
    """``ESTIMATES`` of every metric of ``predict`` on ``rows``: the score and its structure bootstrap, with
    ``structure (len(rows),)`` each row's test structure (0..S-1) and ``draws (B, S)``."""
    predictions = np.concatenate([predict(x[rows[s : s + CHUNK]]) for s in range(0, len(rows), CHUNK)])
    point = scores(predictions, truth[rows], classify)
    sums = structure_sums(predictions, truth[rows], structure, draws.shape[1], classify)
    return {m: (point[m], *interval) for m, interval in bootstrap_intervals(sums, draws, classify).items()}


def transfer_scores(
    spaces: dict[str, dict[str, np.ndarray]],
    structure_index: np.ndarray,
    structure_targets: dict[str, np.ndarray] | None = None,
    atom_targets: dict[str, np.ndarray] | None = None,
    settings: TransferSettings | None = None,
    threads: int = 1,
    controls: tuple[str, ...] = (),
) -> xr.Dataset:
    """Fit every head on every source model and score it on every target model, in every space.

    ``spaces`` maps a space name (``raw``, ``anchor``) to ``{model: features (N, d)}`` over the same
    N atoms: arrays, or what ``np.asarray`` reads, such as a store's ``platonic.stages.common.Rows`` (each is
    read twice, to fit its heads and to be scored, one model per worker thread at a time, so memory grows with
    ``threads``, not with the number of models); ``structure_index (N,)`` (0..S-1) names each atom's
    structure. ``structure_targets`` maps a name to per-structure values ``(S,)`` (regression on mean-pooled
    features; NaN values are left out), ``atom_targets`` to per-atom integer labels ``(N,)`` (classification). Returns
    ``score (head, space, target, metric, source_model, target_model)``: the head fitted on
    ``source_model``'s training structures, scored on ``target_model``'s test structures; the
    diagonal is the ordinary A->A score. A pair whose widths differ is NaN and ``note`` says why.
    Beside it, with the same dims, ``standard_error``, ``ci_low`` and ``ci_high``: the structure bootstrap
    of ``bootstrap_intervals`` over each target's test structures, ``settings.bootstrap`` replicates (None:
    ``similarity.bootstrap``'s default) seeded by ``settings.seed``, the same draws for every head, space and
    model pair of a target (NaN with no replicates). ``control (model)`` marks the models named in ``controls``.
    """
    settings = settings or TransferSettings()
    structure_targets = structure_targets or {}
    atom_targets = atom_targets or {}
    unknown = set(settings.heads) - set(HEADS)
    if unknown:
        raise ValueError(f"unknown heads {sorted(unknown)}; use {', '.join(HEADS)}")
    if not structure_targets and not atom_targets:
        raise ValueError("no targets to transfer: give per-structure labels or per-atom classes")
    space_names = list(spaces)
    models = list(next(iter(spaces.values())))
    for name, features in spaces.items():
        if list(features) != models:
            raise ValueError(f"space {name!r} has models {list(features)}, expected {models}")
    unknown = sorted(set(controls) - set(models))
    if unknown:
        raise ValueError(f"controls {unknown} are not among the models {models}")
    n_replicates = settings.bootstrap if settings.bootstrap is not None else SimilaritySettings().bootstrap
    structure_index = np.asarray(structure_index, dtype=np.int64)
    n_structures = int(structure_index.max()) + 1
    n_atoms = len(structure_index)
    test_atoms = held_out_mask(structure_index, settings.test_fraction, settings.seed)
    test_structure = np.zeros(n_structures, dtype=bool)
    test_structure[structure_index[test_atoms]] = True
    present = np.bincount(structure_index, minlength=n_structures) > 0
    structures = np.arange(n_structures)

    target_names = list(structure_targets) + list(atom_targets)
    rows_of: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, values in structure_targets.items():
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (n_structures,):
            raise ValueError(f"structure target {name!r} has shape {values.shape}, expected ({n_structures},)")
        usable = present & np.isfinite(values)
        rows_of[name] = (structures[usable & ~test_structure], structures[usable & test_structure])
    for name, values in atom_targets.items():
        if np.shape(values) != (n_atoms,):
            raise ValueError(f"atom target {name!r} has shape {np.shape(values)}, expected ({n_atoms},)")
        rows_of[name] = (np.flatnonzero(~test_atoms), np.flatnonzero(test_atoms))
    for name, (train, test) in rows_of.items():
        if len(train) < 2 or len(test) < 1:
            raise ValueError(
                f"target {name!r} has {len(train)} training and {len(test)} test rows; need more labelled structures"
            )

    # each test row's structure (0..S-1 over the target's test structures) and the bootstrap's draws of them
    bootstrap_of = {}
    for name, (_, test) in rows_of.items():
        tested, position = np.unique(structure_index[test] if name in atom_targets else test, return_inverse=True)
        bootstrap_of[name] = (position, structure_counts(len(tested), n_replicates, settings.seed))
    truths = {
        name: np.asarray(atom_targets[name]) if name in atom_targets else np.asarray(structure_targets[name], float)
        for name in target_names
    }
    widths = {space: {m: np.shape(x)[1] for m, x in spaces[space].items()} for space in space_names}

    def features_of(space, model):
        """One model's features as the heads read them: normalised atoms and their structure means."""
        data = normalise_columns(np.asarray(spaces[space][model]), settings.normalisation)
        return data, pool_by_structure(data, structure_index, n_structures)

    def fit(space, source):  # every head and target of one source model: the fitted heads are small
        atoms, pooled = features_of(space, source)
        fitted = {}
        for name, head in itertools.product(target_names, settings.heads):
            classify = name in atom_targets
            groups = structure_index if classify else structures
            fitted[name, head] = _fit_head(
                head, atoms if classify else pooled, truths[name], rows_of[name][0], groups, classify, settings
            )
        return fitted

    def evaluate(space, target, sources):  # the fitted heads of the sources of the target's width, on its rows
        atoms, pooled = features_of(space, target)
        out = {}
        for source, fitted in sources.items():
            for (name, head), (predict, _) in fitted.items():
                classify = name in atom_targets
                out[head, space, name, source, target] = _evaluate(
                    predict, atoms if classify else pooled, rows_of[name][1], truths[name], classify,
                    *bootstrap_of[name],
                )  # fmt: skip
        return out

    # Two passes over the models, each reading one model at a time (an out-of-core ``spaces``, e.g. rows of a
    # store, is read twice per model and never held whole for more than the models being worked on): fit every
    # source's heads, then score every head on each target. Memory grows with ``threads`` models, not with M.
    delayed = dask.delayed
    fits = {(space, m): delayed(fit)(space, m) for space in space_names for m in models}
    scored = [
        delayed(evaluate)(
            space, target, {m: fits[space, m] for m in models if widths[space][m] == widths[space][target]}
        )
        for space in space_names
        for target in models
    ]
    fitted_all, scored = dask.compute(fits, scored, scheduler="threads", num_workers=max(1, threads))
    values = {key: result for part in scored for key, result in part.items()}
    alphas = {
        (head, space, name, source): alpha
        for (space, source), fitted in fitted_all.items()
        for (name, head), (_, alpha) in fitted.items()
    }

    heads = list(settings.heads)
    table = np.full(
        (len(ESTIMATES), len(heads), len(space_names), len(target_names), len(PROBE_METRICS), len(models), len(models)),
        np.nan,
    )
    for (head, space, name, source, target), result in values.items():
        cell = (heads.index(head), space_names.index(space), target_names.index(name))
        for k, metric in enumerate(PROBE_METRICS):
            table[(slice(None), *cell, k, models.index(source), models.index(target))] = result[metric]
    alpha = np.full((len(heads), len(space_names), len(target_names), len(models)), np.nan)
    for (head, space, name, source), value in alphas.items():
        alpha[heads.index(head), space_names.index(space), target_names.index(name), models.index(source)] = value
    note = np.full((len(space_names), len(models), len(models)), "", dtype=object)
    for j, space in enumerate(space_names):
        for (ia, a), (ib, b) in itertools.product(enumerate(models), repeat=2):
            wa, wb = np.shape(spaces[space][a])[1], np.shape(spaces[space][b])[1]
            if wa != wb:
                note[j, ia, ib] = f"widths differ ({wa} vs {wb}): a head fitted on {a} cannot read {b}'s features"
    score_dims = ("head", "space", "target", "metric", "source_model", "target_model")
    ds = xr.Dataset(
        {
            **{name: (score_dims, estimate) for name, estimate in zip(ESTIMATES, table, strict=True)},
            "control": (("model",), np.array([m in controls for m in models], dtype=bool)),
            "ridge_relative_alpha": (("head", "space", "target", "source_model"), alpha),
            "note": (("space", "source_model", "target_model"), note),
            "n_train": (("target",), np.array([len(rows_of[t][0]) for t in target_names], dtype=np.int64)),
            "n_test": (("target",), np.array([len(rows_of[t][1]) for t in target_names], dtype=np.int64)),
        },
        coords={
            "head": heads,
            "space": space_names,
            "target": target_names,
            "target_kind": ("target", [KINDS[t in atom_targets] for t in target_names]),
            "metric": list(PROBE_METRICS),
            "source_model": models,
            "target_model": models,
            "model": models,
        },
    )  # fmt: skip
    ds["score"].attrs["description"] = (
        "head fitted on source_model's training structures, scored on target_model's test structures; "
        "mae and r2 for structure regression, accuracy for atom classification, NaN where not applicable"
    )
    bootstrap = f"over {n_replicates} structure-bootstrap replicates of the test structures (seed {settings.seed})"
    ds["standard_error"].attrs["description"] = f"standard deviation of the score {bootstrap}"
    ds["ci_low"].attrs["description"] = f"2.5 percentile of the score {bootstrap}"
    ds["ci_high"].attrs["description"] = f"97.5 percentile of the score {bootstrap}"
    ds["control"].attrs["description"] = "True for a control representation (config: models.<name>.control)"
    settings_attrs = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(settings).items()}
    settings_attrs["bootstrap"] = n_replicates
    ds.attrs.update(kind="transfer", n_atoms=n_atoms, n_structures=int(present.sum()), **settings_attrs)
    return ds


def transfer_table(ds: xr.Dataset) -> list[dict]:
    """Tidy rows (head, space, target, metric, source and target model, whether each is a control, value,
    standard error, 95 % interval, n_test, note) for the CSV; metrics that do not apply to a target's kind
    are left out."""
    rows = []
    estimates = {name: ds[name].values for name in ESTIMATES}
    control = dict(zip(ds["model"].values, ds["control"].values, strict=True))
    for (h, head), (j, space), (t, target), (k, metric) in itertools.product(
        enumerate(ds["head"].values),
        enumerate(ds["space"].values),
        enumerate(ds["target"].values),
        enumerate(ds["metric"].values),
    ):
        classify = str(ds.target_kind.values[t]) == "atom classification"
        if (metric == "accuracy") != classify:
            continue
        for (ia, a), (ib, b) in itertools.product(enumerate(ds.source_model.values), enumerate(ds.target_model.values)):
            rows.append(
                {
                    "head": str(head),
                    "space": str(space),
                    "target": str(target),
                    "metric": str(metric),
                    "source_model": str(a),
                    "target_model": str(b),
                    "source_control": bool(control[a]),
                    "target_control": bool(control[b]),
                    "value": float(estimates["score"][h, j, t, k, ia, ib]),
                    **{name: float(estimates[name][h, j, t, k, ia, ib]) for name in ESTIMATES[1:]},
                    "n_test": int(ds["n_test"].values[t]),
                    "note": str(ds["note"].values[j, ia, ib]),
                }
            )
    return rows

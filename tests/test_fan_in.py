"""The fan-in as separate jobs (summarise, compare-pair, gather) against the one-process fan-in, and the stores
that carry its intermediate results."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import xarray as xr
from analysis_stores import write_study

from platonic.cli import main
from platonic.compare import fan_in, oracle, result_store
from platonic.compare.similarity import pairwise_similarity
from platonic.settings import SimilaritySettings
from platonic.spaces import SPACES
from platonic.stages.similarity import by_space
from platonic.store import open_store, write_store

SETTINGS = {"weights": "multiplicity", "k": 4, "lfre_k": 6, "subsample": 60, "queries": 50, "bootstrap": 12,
            "permutations": 2, "threads": 2}  # fmt: skip


def _study(tmp_path, n_structures=24, seed=0):
    """Three models of one latent structure (names out of order on purpose), anchors on every atom's
    representative; returns the paths and the raw features."""
    rng = np.random.default_rng(seed)
    structure_index = np.repeat(np.arange(n_structures), rng.integers(2, 6, n_structures))
    n = len(structure_index)
    latent = rng.normal(size=(n, 5))
    raw = {m: np.tanh(latent @ rng.normal(size=(5, d)) + 0.2 * rng.normal(size=(n, d))) for m, d in
           (("zinc", 9), ("argon", 7), ("mid", 6))}  # fmt: skip
    z = rng.choice([3, 8, 14], size=n)
    anchor_rows = np.sort(rng.choice(n, size=8, replace=False))
    paths = write_study(tmp_path, raw, z, structure_index, {"energy": rng.normal(size=n_structures)}, anchor_rows)
    # the jobs number structures by their ids' order (syn-0, syn-1, syn-10, ...), as the workflow does
    ids = np.array([str(i) for i in open_store(paths["embeddings"][0])["structure_id"].values], dtype=object)
    structure_index = np.unique(ids, return_inverse=True)[1]
    multiplicity = rng.integers(1, 4, size=n)
    anchors = open_store(paths["anchors"]).load()
    anchors["multiplicity"] = ("atom", multiplicity)
    anchors.attrs.update(atoms="unique")
    write_store(anchors, tmp_path / "anchors-unique.zarr")
    paths["anchors"] = tmp_path / "anchors-unique.zarr"
    return paths, raw, structure_index, multiplicity


def _run_jobs(tmp_path, paths, settings: dict, models=None):
    """summarise every model, compare every pair, gather: the workflow's jobs, through the CLI."""
    import itertools
    import json

    by_model = {open_store(p).attrs["model"]: (str(p), str(q)) for p, q in
                zip(paths["embeddings"], paths["projections"], strict=True)}  # fmt: skip
    models = models or list(by_model)
    options = ["--settings", json.dumps(settings), "--anchors", str(paths["anchors"])]
    summaries = {}
    for model in models:
        summaries[model] = str(tmp_path / f"summaries/{model}.zarr")
        embedding, projection = by_model[model]
        assert main(["summarise", summaries[model], "--embedding", embedding, "--projection", projection,
                     *options]) == 0  # fmt: skip
    pairs = []
    for a, b in itertools.combinations(models, 2):
        pairs.append(str(tmp_path / f"pairs/{a}__{b}.zarr"))
        assert main(["compare-pair", pairs[-1], "--embeddings", by_model[a][0], by_model[b][0],
                     "--projections", by_model[a][1], by_model[b][1], "--summaries", summaries[a], summaries[b],
                     *options]) == 0  # fmt: skip
    out = tmp_path / "similarity.zarr"
    table = tmp_path / "similarity.csv"
    assert main(["gather", str(out), str(table), "--summaries", *summaries.values(), "--pairs", *pairs,
                 "--controls", "mid", *options]) == 0  # fmt: skip
    return open_store(out).load(), summaries, pairs


def _assert_same(a: xr.Dataset, b: xr.Dataset, variables):
    for name in variables:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


@pytest.mark.parametrize("neighbours", ["all", "other-structures"])
@pytest.mark.slow
def test_the_jobs_give_the_numbers_of_the_one_process_fan_in_bit_for_bit(tmp_path, neighbours):
    """Every variable of the gathered store equals the one-process fan-in's exactly: both run the same functions
    (fan_in.summarise, fan_in.compare_pair, similarity.assemble) on the same float32 rows with the same draws,
    and a summary read back from its store is bit for bit the one written."""
    paths, raw, structure_index, multiplicity = _study(tmp_path)
    settings = {**SETTINGS, "neighbours": neighbours}
    gathered, _, _ = _run_jobs(tmp_path, paths, settings)
    embeddings = {m: open_store(p) for m, p in zip(raw, paths["embeddings"], strict=True)}
    projections = {m: open_store(p) for m, p in zip(raw, paths["projections"], strict=True)}
    spaces = by_space(embeddings, projections, np.ones(len(structure_index), dtype=bool))
    assert list(spaces) == list(SPACES) == ["raw", "unit", "anchor"]
    single = pairwise_similarity(spaces, structure_index, SimilaritySettings.from_mapping(settings),
                                 weights=multiplicity.astype(float))  # fmt: skip
    assert list(gathered.model_a.values) == list(raw)
    _assert_same(gathered, single, [v for v in single.data_vars])
    assert np.isfinite(gathered["similarity"].values).sum() > 0.9 * gathered["similarity"].size
    assert np.isfinite(gathered["chance"].sel(metric="linear_cka").values).all()
    assert gathered["control"].values.tolist() == [False, False, True]
    assert (gathered["pair_atoms"].values == len(structure_index)).all()


@pytest.mark.slow
def test_a_pair_compares_the_atoms_both_models_embedded(tmp_path):
    """A model that left out two structures: its pairs are compared on the other atoms (the other model's summary
        is computed again there), the other pairs on every atom; each pair equals the one-process fan-in on those atoms,
    and each model with itself is compared on the atoms it embedded."""
    paths, raw, structure_index, multiplicity = _study(tmp_path)
    left_out = np.isin(structure_index, [3, 7])  # two structures
    store = open_store(paths["embeddings"][0]).load()  # zinc
    store["valid"] = ("atom", ~left_out)
    store["embedding"] = store["embedding"].where(store["valid"])
    write_store(store, paths["embeddings"][0])
    projection = open_store(paths["projections"][0]).load()
    projection["valid"] = ("atom", ~left_out)
    write_store(projection, paths["projections"][0])
    gathered, _, _ = _run_jobs(tmp_path, paths, SETTINGS)
    n, kept = len(structure_index), int((~left_out).sum())
    np.testing.assert_array_equal(gathered["pair_atoms"].values, [[kept, kept, kept], [kept, n, n], [kept, n, n]])
    assert gathered.attrs["n_atoms"] == kept
    settings = SimilaritySettings.from_mapping(SETTINGS)
    for models, rows in ((["zinc", "argon"], ~left_out), (["argon", "mid"], np.ones(n, bool))):
        at = [list(raw).index(m) for m in models]
        embeddings = {m: open_store(paths["embeddings"][i]) for m, i in zip(models, at, strict=True)}
        spaces = by_space(
            embeddings, {m: open_store(paths["projections"][i]) for m, i in zip(models, at, strict=True)}, rows
        )
        ids = structure_index[rows]
        single = pairwise_similarity(spaces, ids, settings, weights=multiplicity[rows].astype(float))
        pair = gathered.sel(model_a=models, model_b=models)
        for name in ("similarity", "ci_low", "ci_high", "chance", "bootstrap_replicates"):
            for cell in ((0, 1), (1, 0)):  # a model with itself: on its own atoms (the diagonal of the store)
                got, expected = (d[name].values[:, :, cell[0], cell[1]] for d in (pair, single))
                np.testing.assert_array_equal(got, expected, err_msg=f"{models} {name}")


@pytest.mark.slow
def test_gather_names_a_missing_pair_and_a_summary_made_with_other_settings(tmp_path, capsys):
    paths, _, _, _ = _study(tmp_path, n_structures=12)
    _, summaries, pairs = _run_jobs(tmp_path, paths, SETTINGS)
    import json

    common = ["--settings", json.dumps(SETTINGS), "--anchors", str(paths["anchors"])]
    out = str(tmp_path / "again.zarr")
    assert main(["gather", out, str(tmp_path / "again.csv"), "--summaries", *summaries.values(), "--pairs",
                 *pairs[:-1], *common]) == 2  # fmt: skip
    assert "no pair result for [('argon', 'mid')]; run compare-pair for them" in capsys.readouterr().err
    other = ["--settings", json.dumps({**SETTINGS, "k": 3}), "--anchors", str(paths["anchors"])]
    assert main(["gather", out, str(tmp_path / "again.csv"), "--summaries", *summaries.values(), "--pairs",
                 *pairs, *other]) == 2  # fmt: skip
    assert "computed with other similarity settings; re-run it" in capsys.readouterr().err


def test_cknna_from_the_summaries_own_kernels_is_cknna_computed_within_the_pair():
    """CKNNA's own kernels, computed once in each model's summary, give the pair the values, bootstrap replicates and
    chance levels it computes itself from summaries without them (bit for bit), and the value is the one-call CKNNA
    on the same neighbour lists."""
    rng = np.random.default_rng(5)
    groups = np.repeat(np.arange(40), 5)
    x = rng.normal(size=(len(groups), 6))
    y = x @ rng.normal(size=(6, 4)) + 0.5 * rng.normal(size=(len(groups), 4))
    settings = SimilaritySettings.from_mapping({**SETTINGS, "metrics": ["cknna"], "bootstrap": 20, "permutations": 3})
    c = fan_in.Comparison.build(len(groups), groups, None, settings)
    sx, sy = fan_in.summarise(x, c), fan_in.summarise(y, c)
    assert sx.own_kernel is not None and sx.own_kernel.replicates.shape == (20,)
    with_own = fan_in.compare_pair(x, y, sx, sy, c)
    without = fan_in.compare_pair(
        x, y, dataclasses.replace(sx, own_kernel=None), dataclasses.replace(sy, own_kernel=None), c
    )
    key = ("cknna", True)
    assert with_own.values[key] == without.values[key]
    np.testing.assert_array_equal(with_own.replicates[key], without.replicates[key])
    np.testing.assert_array_equal(with_own.chance[key], without.chance[key])
    k = c.k
    expected = oracle.cknna(x, y, sx.neighbours[:, :k], sy.neighbours[:, :k])
    assert with_own.values[key] == pytest.approx(expected, rel=1e-12)


def test_a_result_store_gives_back_every_array_bit_for_bit(tmp_path):
    """A model summary with every part (bootstrap moments, permuted moments, neighbour lists) survives the
    round trip exactly, and its rebuilt ReplicateMoments is bound to the resampling given at load."""
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(15), 4)
    x = rng.normal(size=(len(groups), 5)).astype(np.float32)
    settings = SimilaritySettings.from_mapping(SETTINGS)
    c = fan_in.Comparison.build(len(groups), groups, rng.integers(1, 3, len(groups)).astype(float), settings)
    summary = fan_in.summarise(x, c)
    itself = fan_in.compare_pair(x, x, summary, summary, c, same=True)
    result_store.save({"summary": summary, "self": itself, "atoms": np.arange(4)}, tmp_path / "s.zarr", model="m")
    back, attrs = result_store.load(tmp_path / "s.zarr", c.resampling)
    assert attrs["model"] == "m"
    assert back["summary"].replicates.resampling is c.resampling

    def flat(value, prefix=""):
        if isinstance(value, np.ndarray) or np.isscalar(value) or value is None:
            yield prefix, value
        elif isinstance(value, dict):
            for k, v in value.items():
                yield from flat(v, f"{prefix}/{k}")
        elif isinstance(value, list | tuple):
            for i, v in enumerate(value):
                yield from flat(v, f"{prefix}/{i}")
        elif dataclasses.is_dataclass(value):
            yield from flat({f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, prefix)
        else:
            yield from flat({k: v for k, v in vars(value).items() if k != "resampling"}, prefix)

    written = dict(flat({"summary": summary, "self": itself}))
    read = dict(flat({"summary": back["summary"], "self": back["self"]}))
    assert written.keys() == read.keys() and len(written) > 40
    for key, value in written.items():
        if value is None:
            assert read[key] is None, key
        else:
            np.testing.assert_array_equal(read[key], value, err_msg=key)
            assert np.asarray(read[key]).dtype == np.asarray(value).dtype, key

    # one space's summary read alone (a pair job reads each space's when it compares it) is that space's, exactly
    other = fan_in.summarise(x[:, ::-1].copy(), c)
    result_store.save({"summary": {"raw": summary, "unit": other}, "atoms": np.arange(4)}, tmp_path / "m.zarr")
    alone = result_store.load_item(tmp_path / "m.zarr", ("summary", "unit"), c.resampling)
    assert alone.replicates.resampling is c.resampling
    expected = dict(flat(other))
    got = dict(flat(alone))
    assert expected.keys() == got.keys()
    for key, value in expected.items():
        if value is not None:
            np.testing.assert_array_equal(got[key], value, err_msg=key)
    with pytest.raises(ValueError, match="has no \\('summary', 'anchor'\\)"):
        result_store.load_item(tmp_path / "m.zarr", ("summary", "anchor"))


def test_the_settings_hash_leaves_out_later_keys_only_at_their_default():
    """A summary or pair store made before ot_cost and the twonn_* keys existed holds the numbers of their defaults
    and stays valid: the default hash is the hash of the settings without those keys; setting any of them to
    another value changes it."""
    import hashlib

    from platonic.settings import ADDED_LATER
    from platonic.stages.fan_in import _settings_hash

    later = ADDED_LATER["similarity",]
    settings = SimilaritySettings.from_mapping(SETTINGS)
    before = {k: v for k, v in dataclasses.asdict(settings).items() if k != "threads" and k not in later}
    expected = hashlib.sha256(repr(sorted((before | {"spaces": SPACES}).items())).encode()).hexdigest()
    assert _settings_hash(settings) == expected
    others = {"ot_cost": "euclidean", "twonn_distance": "euclidean", "twonn_duplicates": "drop",
              "twonn_zero_tolerance": 0.0, "twonn_discard": 0.0}  # fmt: skip
    assert set(others) == set(later)
    hashes = {_settings_hash(dataclasses.replace(settings, **{key: value})) for key, value in others.items()}
    assert len(hashes) == len(others) and expected not in hashes


def test_a_pair_computes_its_shared_work_once_for_every_metric_that_uses_it(monkeypatch):
    """Linear CKA, debiased CKA, SVCCA and Procrustes all read the pair's cross Gram (metrics.Pair.cross): one
    product for the value and one per permuted pair, not one per metric; the bootstrap's cross sums likewise."""
    from platonic.compare.metrics import pair as pair_module

    calls = {"cross_gram": 0, "replicate_sums": 0}

    def counting(name, function):
        def counted(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)

        return counted

    from platonic.compare import bootstrap

    monkeypatch.setattr(pair_module, "cross_gram", counting("cross_gram", pair_module.cross_gram))
    monkeypatch.setattr(bootstrap, "replicate_sums", counting("replicate_sums", bootstrap.replicate_sums))
    rng = np.random.default_rng(4)
    groups = np.repeat(np.arange(30), 3)
    x, y = rng.normal(size=(90, 4)), rng.normal(size=(90, 5))
    settings = SimilaritySettings(metrics=("linear_cka", "debiased_cka", "svcca", "procrustes"), bootstrap=5,
                                  permutations=3, threads=1)  # fmt: skip
    c = fan_in.Comparison.build(90, groups, settings=settings)
    sx, sy = fan_in.summarise(x, c), fan_in.summarise(y, c)
    calls.update(cross_gram=0, replicate_sums=0)  # the summaries' own sums (a space with itself) are not the pair's
    result = fan_in.compare_pair(x, y, sx, sy, c)
    assert calls == {"cross_gram": 1 + 3, "replicate_sums": 1}
    assert set(result.values) == {(m, True) for m in settings.metrics}
    assert all(values.shape == (3,) for values in result.chance.values())

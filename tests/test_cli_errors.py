"""Every command, run by hand with wrong arguments, answers with one line naming the argument: no arguments, a store
path that does not exist, a store of another kind, stores of two structure sets, settings that are not JSON or not
valid. The grid runs ``main`` in this process (an exception that escapes it is a bug and fails the test); a few
cases run ``python -m platonic`` to see exactly what a person sees."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from analysis_stores import write_study

from platonic.cli import commands, main
from platonic.compare import result_store
from platonic.store import write_store

HASH_A, HASH_B = "structures-of-study-a", "structures-of-study-b"
MODELS = ("m1", "m2")

# each command's arguments: (argument name as the errors give it, role of each value); a name without "--" is a
# positional argument. The roles of stores are filled in from a study; any other role is a file name to write.
STORE_ROLES = {"structures", "embedding", "embedding2", "projection", "projection2", "anchors", "similarity",
               "summary", "summary2"}  # fmt: skip
ARGUMENTS = {
    "project": [("embedding", "embedding"), ("anchors", "anchors"), ("output", "out.zarr")],
    "anchors": [("output", "out.zarr"), ("--structures", "structures"), ("--embedding", "embedding")],
    "summarise": [("output", "out.zarr"), ("--embedding", "embedding"), ("--projection", "projection"),
                  ("--anchors", "anchors")],
    "compare-pair": [("output", "out.zarr"), ("--embeddings", "embedding", "embedding2"),
                     ("--projections", "projection", "projection2"), ("--summaries", "summary", "summary2"),
                     ("--anchors", "anchors")],
    "gather": [("output", "out.zarr"), ("table", "out.csv"), ("--summaries", "summary", "summary2"),
               ("--anchors", "anchors")],
    "arithmetic": [("table", "out.csv"), ("--projections", "projection", "projection2"), ("--anchors", "anchors")],
    "audit": [("output", "out.zarr"), ("--projections", "projection", "projection2"), ("--anchors", "anchors"),
              ("--structures", "structures"), ("--elements-table", "e.csv"), ("--structures-table", "s.csv"),
              ("--bias-table", "b.csv")],
    "transfer": [("output", "out.zarr"), ("table", "out.csv"), ("--structures", "structures"),
                 ("--embeddings", "embedding", "embedding2"), ("--projections", "projection", "projection2"),
                 ("--anchors", "anchors")],
    "symmetry": [("table", "out.csv"), ("--flagged-table", "f.csv"), ("--structures", "structures"),
                 ("--embeddings", "embedding", "embedding2"), ("--anchors", "anchors")],
    "atom-modes": [("table", "out.csv"), ("--structures", "structures"), ("--embeddings", "embedding", "embedding2"),
                   ("--projections", "projection", "projection2"), ("--anchors", "anchors")],
    "ladder": [("table", "out.csv"), ("--figure", "f.png"), ("--structures", "structures"),
               ("--embeddings", "embedding", "embedding2"), ("--projections", "projection", "projection2"),
               ("--anchors", "anchors")],
    "layers": [("output", "out.zarr"), ("table", "out.csv"), ("--embeddings", "embedding", "embedding2"),
               ("--anchors", "anchors")],
    "anchor-sensitivity": [("table", "out.csv"), ("--structures", "structures"),
                           ("--embeddings", "embedding", "embedding2"), ("--anchors", "anchors")],
    "similarity": [("output", "out.zarr"), ("table", "out.csv"), ("--embeddings", "embedding", "embedding2"),
                   ("--projections", "projection", "projection2"), ("--anchors", "anchors")],
    "provenance": [("output", "out.html"), ("--embeddings", "embedding", "embedding2"),
                   ("--structures", "structures"), ("--anchors", "anchors"), ("--similarity", "similarity")],
    "headline": [("similarity", "similarity"), ("table", "t.csv"), ("text", "t.txt")],
    "lineage": [("similarity", "similarity"), ("table", "t.csv"), ("--figure", "f.png"), ("--metadata", "{}")],
    "heatmaps": [("similarity", "similarity"), ("--out-dir", "maps")],
    "overview": [("figure", "agreement"), ("similarity", "similarity"), ("--output", "f.png")],
    "embed": [("structures", "structures"), ("output", "out.zarr"), ("--model", "element")],
    "anchor-set": [("output", "out.extxyz"), ("--anchors", "anchors"), ("--structures", "structures")],
    "screen": [("output", "out"), ("--structures", "structures"), ("--embeddings", "embedding", "embedding2"),
               ("--projections", "projection", "projection2"),
               ("--study-projections", "projection", "projection2"), ("--study-structures", "structures"),
               ("--anchors", "anchors")],
    "map": [("output", "out.html"), ("--structures", "structures"), ("--projections", "projection", "projection2"),
            ("--embeddings", "embedding", "embedding2"), ("--anchors", "anchors"), ("--audit", "audit.zarr")],
    "prediction-failure": [("table", "out.csv"), ("--summary-table", "s.csv"), ("--structures", "structures"),
                           ("--embeddings", "embedding", "embedding2"),
                           ("--projections", "projection", "projection2"), ("--anchors", "anchors"),
                           ("--audit", "audit.zarr"), ("--symmetry-table", "symmetry.csv")],
    "phonon-supercells": [("output", "out.zarr"), ("--structures", "structures")],
    "phonons": [("table", "out.csv"), ("--correlations", "c.csv"), ("--structures", "structures"),
                ("--supercells", "structures"), ("--forces", "embedding", "embedding2"),
                ("--embeddings", "embedding", "embedding2"), ("--projections", "projection", "projection2"),
                ("--anchors", "anchors"), ("--audit", "audit.zarr"), ("--symmetry-table", "symmetry.csv")],
}  # fmt: skip


def store_arguments(name: str) -> list[tuple[str, str]]:
    """``(argument, role)`` of each store argument of ``name`` (its first value's role)."""
    return [(argument, values[0]) for argument, *values in ARGUMENTS[name] if values[0] in STORE_ROLES]


# the commands that read no store: no arguments is the one wrong command line they share with the others
WITHOUT_STORES = {"download", "models", "prefetch", "prepare", "venv"}
# the argument given a store of the other structure set, where a command reads stores that must share one
OTHER_SET = {name: "--anchors" for name in ARGUMENTS if "--anchors" in dict(store_arguments(name))}
OTHER_SET.update({"project": "anchors", "anchors": "--structures", "provenance": "--similarity"})
# where a command reads the configured sections as JSON, and a key every one of those sections has
SETTINGS = [name for name, fn in commands().items() if "settings" in fn.__annotations__ and name in ARGUMENTS]


def _study(root: Path, structure_set_hash: str) -> dict[str, Path]:
    """Every store the commands read, on 8 structures of 2 models; the paths by role."""
    rng = np.random.default_rng(0)
    structure_index = np.repeat(np.arange(8), 3)
    z = rng.choice([3, 8, 14], size=len(structure_index))
    raw = {model: rng.normal(size=(len(z), 4)) for model in MODELS}
    paths = write_study(root, raw, z, structure_index, {}, np.arange(3), structure_set_hash, {"atoms": "unique"})
    similarity = xr.Dataset(
        {"value": ("model", np.zeros(2))},
        coords={"model": list(MODELS), "model_a": list(MODELS), "model_b": list(MODELS)},
        attrs={"kind": "similarity", "structure_set_hash": structure_set_hash},
    )
    roles = {
        "structures": paths["structures"],
        "anchors": paths["anchors"],
        "similarity": write_store(similarity, root / "similarity.zarr"),
    }
    for i, model in enumerate(MODELS):
        suffix = "2" if i else ""
        roles[f"embedding{suffix}"] = paths["embeddings"][i]
        roles[f"projection{suffix}"] = paths["projections"][i]
        roles[f"summary{suffix}"] = result_store.save(
            {"valid": np.ones(len(z), bool)}, root / f"summaries/{model}.zarr", kind="model summary", model=model,
            structure_set_hash=structure_set_hash, anchor_set_hash="synthetic-anchors",
        )  # fmt: skip
    return roles


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> tuple[dict, dict]:
    root = tmp_path_factory.mktemp("studies")
    return _study(root / "a", HASH_A), _study(root / "b", HASH_B)


def command_line(name: str, roles: dict, out: Path, replace: dict | None = None) -> list[str]:
    """The argv of ``name`` on the stores ``roles``, its outputs under ``out``; ``replace`` gives an argument's
    first value instead."""
    argv = [name]
    for argument, *values in ARGUMENTS[name]:
        words = [str(roles[v]) if v in STORE_ROLES else v if v.startswith("{") else str(out / v) for v in values]
        if name in ("overview", "embed") and argument in ("figure", "--model"):
            words = values
        if replace and argument in replace:
            words[0] = str(replace[argument])
        argv += ([argument] if argument.startswith("--") else []) + words
    return argv


def failure(argv: list[str], capsys) -> str:
    """The one line ``main`` writes to stderr for ``argv``, checked to be an error of exit status 2."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"platonic {argv[0]}: error: ")
    assert "Traceback" not in err
    return lines[0]


def test_the_grid_covers_every_command():
    assert set(ARGUMENTS) | WITHOUT_STORES == set(commands())


@pytest.mark.parametrize("name", sorted(commands()))
def test_no_arguments_is_one_line_naming_what_is_required(name, capsys):
    if name == "models":  # takes none
        assert main([name]) == 0
        return
    with pytest.raises(SystemExit) as exit:
        main([name])
    err = capsys.readouterr().err
    assert exit.value.code == 2
    assert err.splitlines() == [err.strip()], err
    assert err.startswith(f"platonic {name}: error: the following arguments are required: ")
    assert err.strip().endswith(f"(see platonic {name} --help)")


@pytest.mark.parametrize(
    ("name", "argument"), [(name, argument) for name in ARGUMENTS for argument, _ in store_arguments(name)]
)
def test_a_store_that_does_not_exist_is_named_with_its_argument(name, argument, studies, tmp_path, capsys):
    absent = tmp_path / "absent.zarr"
    line = failure(command_line(name, studies[0], tmp_path, {argument: absent}), capsys)
    assert f"argument {argument}: store {absent} does not exist; give the store that `platonic " in line


@pytest.mark.parametrize(
    ("name", "argument", "role"), [(name, *pair) for name in ARGUMENTS for pair in store_arguments(name)]
)
def test_a_store_of_another_kind_says_which_kind_it_is_and_which_was_expected(
    name, argument, role, studies, tmp_path, capsys
):
    other = "embedding" if role == "anchors" else "anchors"
    wrong = studies[0][other]
    line = failure(command_line(name, studies[0], tmp_path, {argument: wrong}), capsys)
    assert f"argument {argument}: {wrong} is an {'embedding' if other == 'embedding' else 'anchor'} store" in line
    expected = {"embedding": "an embedding store", "projection": "a projection store", "anchors": "an anchor store",
                "structures": "a structure store", "similarity": "a similarity store",
                "summary": "a model summary"}[role.rstrip("2")]  # fmt: skip
    assert f"expected {expected}" in line


@pytest.mark.parametrize("name", sorted(OTHER_SET))
def test_stores_of_two_structure_sets_name_both_hashes_and_the_arguments(name, studies, tmp_path, capsys):
    argument = OTHER_SET[name]
    other = studies[1][dict(store_arguments(name))[argument]]
    line = failure(command_line(name, studies[0], tmp_path, {argument: other}), capsys)
    assert HASH_A in line and HASH_B in line
    assert f"{other} has structure_set_hash {HASH_B}" in line
    assert line.split(": ")[2].startswith("arguments ") and argument in line.split(": ")[2]
    assert "rebuild them from one structure store" in line
    assert not (tmp_path / "out.zarr").exists() and not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("name", SETTINGS)
def test_settings_that_are_not_json_or_not_valid_name_the_argument_and_the_key(name, studies, tmp_path, capsys):
    argv = command_line(name, studies[0], tmp_path)
    line = failure([*argv, "--settings", "{threads: 2"], capsys)
    assert "argument --settings: not JSON (" in line and "'{threads: 2'" in line
    line = failure([*argv, "--settings", '{"no_such_key": 2}'], capsys)
    assert line.split(": ")[2] == "argument --settings"
    assert ".no_such_key: Additional properties are not allowed ('no_such_key' was unexpected)" in line


def test_a_setting_flag_with_a_wrong_value_is_named_by_its_flag(studies, tmp_path, capsys):
    argv = command_line("similarity", studies[0], tmp_path)
    line = failure([*argv, "--k", "0"], capsys)
    assert "argument --k: invalid settings: similarity.k: 0 is less than the minimum of 1" in line
    line = failure([*argv, "--k", "0", "--settings", '{"atomz": "all"}'], capsys)
    assert "arguments --settings, --k: " in line and "(did you mean 'atoms'?)" in line


def test_a_failed_command_leaves_an_existing_output_as_it_was(studies, tmp_path, capsys):
    a, b = studies
    output = tmp_path / "projection.zarr"
    assert main(["project", str(a["embedding"]), str(a["anchors"]), str(output)]) == 0
    before = sorted((p.relative_to(output), p.read_bytes()) for p in output.rglob("*") if p.is_file())
    failure(["project", str(a["embedding"]), str(b["anchors"]), str(output)], capsys)
    failure(["project", str(a["anchors"]), str(a["anchors"]), str(output)], capsys)
    after = sorted((p.relative_to(output), p.read_bytes()) for p in output.rglob("*") if p.is_file())
    assert after == before
    assert [p.name for p in tmp_path.iterdir()] == ["projection.zarr"]  # no temporary left beside it


def test_a_folder_that_is_not_a_store_is_named(studies, tmp_path, capsys):
    (tmp_path / "empty.zarr").mkdir()
    line = failure(["project", str(studies[0]["embedding"]), str(tmp_path / "empty.zarr"), str(tmp_path / "o")], capsys)
    assert f"argument anchors: {tmp_path / 'empty.zarr'} is not a store of platonic (" in line


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["project", "{a}/embeddings/m1.zarr", "{a}/missing.zarr", "{a}/p.zarr"], "argument anchors: store "),
        (["project", "{a}/anchors.zarr", "{a}/anchors.zarr", "{a}/p.zarr"], "argument embedding: "),
        (["project", "{a}/embeddings/m1.zarr", "{b}/anchors.zarr", "{a}/p.zarr"], HASH_B),
        (["headline", "{a}/similarity.zarr", "t", "x", "--oops"], "unrecognized arguments: --oops"),
    ],
)
def test_by_hand_a_person_sees_one_line_and_exit_status_2(argv, expected, studies):
    """What ``python -m platonic`` prints, without this process's logging or pytest's capture."""
    roots = {k: str(Path(s["anchors"]).parent) for k, s in zip("ab", studies, strict=True)}
    argv = [word.format(**roots) for word in argv]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"), *sys.path])}
    done = subprocess.run([sys.executable, "-m", "platonic", *argv], capture_output=True, text=True, env=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith(f"platonic {argv[0]}: error: ") and expected in done.stderr


def test_a_json_argument_a_stage_parses_is_named_when_it_is_not_json(studies, tmp_path, capsys):
    argv = command_line("lineage", studies[0], tmp_path)
    line = failure([*argv[:-1], "{bad"], capsys)
    assert "argument --metadata: not JSON (" in line and line.endswith(": '{bad'")


def test_the_optional_stores_of_a_figure_share_its_structure_set(studies, tmp_path, capsys):
    a, b = studies
    argv = [*command_line("overview", a, tmp_path), "--anchors", str(b["anchors"])]
    line = failure(argv, capsys)
    assert "arguments similarity, --anchors: " in line and HASH_A in line and HASH_B in line
    line = failure([*command_line("overview", a, tmp_path), "--embeddings", str(b["embedding"])], capsys)
    assert "arguments similarity, --embeddings: " in line
    assert f"{b['embedding']} has structure_set_hash {HASH_B}" in line

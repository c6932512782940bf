import argparse
import ast
import re
import shlex
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pytest
import yaml

from platonic.cli import _parser, add_arguments, commands, describe_model, main
from platonic.compare.registry import NAMES as METRICS
from platonic.compare.registry import SIMILARITIES
from platonic.models import PRESETS
from platonic.settings import SymmetrySettings
from platonic.stages import command as registry
from platonic.store import open_store


def test_models_lists_every_preset(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in PRESETS:
        assert name in out
    lines = out.splitlines()
    chgnet = next(i for i, line in enumerate(lines) if line.split()[:2] == ["chgnet-r2scan", "family=chgnet"])
    assert lines[chgnet + 1].strip() == "CHGNet, trained on MPtrj + MP-r2SCAN (r2SCAN)"
    element = next(i for i, line in enumerate(lines) if line.split()[:2] == ["element", "family=element"])
    assert lines[element + 1].strip() == "element one-hot, no training"


def test_describe_model_says_what_is_unknown():
    assert describe_model({}) == "architecture unknown, training data unknown"
    assert describe_model({"architecture": "MACE", "training_data": ["OMat24"], "fidelity": None}) == (
        "MACE, trained on OMat24"
    )


def test_prepare_writes_a_store_and_reports_bad_input(tmp_path, sample_csv, capsys):
    assert main(["prepare", str(sample_csv), str(tmp_path / "s.zarr"), "--limit", "3"]) == 0
    ds = open_store(tmp_path / "s.zarr")
    assert ds.attrs["n_structures"] == 3
    assert main(["prepare", str(tmp_path / "none.csv"), str(tmp_path / "t.zarr")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "dataset.path" in err
    assert not (tmp_path / "t.zarr").exists()


def test_embed_needs_a_family_for_unknown_models(tmp_path, sample_csv, capsys):
    main(["prepare", str(sample_csv), str(tmp_path / "s.zarr"), "--limit", "2"])
    code = main(["embed", str(tmp_path / "s.zarr"), str(tmp_path / "e.zarr"), "--model", "mystery"])
    assert code == 2
    assert "give its family and checkpoint" in capsys.readouterr().err


@pytest.mark.slow
def test_stage_chain_on_two_real_models(tmp_path, sample_csv):
    """prepare -> embed x2 -> anchors -> project -> similarity, through the CLI only."""
    s, e1, e2 = tmp_path / "s.zarr", tmp_path / "e1.zarr", tmp_path / "e2.zarr"
    assert main(["prepare", str(sample_csv), str(s), "--limit", "8"]) == 0
    assert main(["embed", str(s), str(e1), "--model", "chgnet-0.3.0", "--device", "cpu", "--no-progress"]) == 0
    assert main(["embed", str(s), str(e2), "--model", "chgnet-r2scan", "--device", "cpu", "--no-progress"]) == 0
    anchors = tmp_path / "a.zarr"
    assert (
        main(
            [
                "anchors",
                str(anchors),
                "--structures",
                str(s),
                "--embedding",
                str(e1),
                "--reference-model",
                "chgnet-0.3.0",
                "--n",
                "12",
                "--seed",
                "1",
            ]
        )
        == 0
    )
    assert main(["project", str(e1), str(anchors), str(tmp_path / "p1.zarr")]) == 0
    assert main(["project", str(e2), str(anchors), str(tmp_path / "p2.zarr")]) == 0
    assert (
        main(
            [
                "similarity",
                str(tmp_path / "sim.zarr"),
                str(tmp_path / "sim.csv"),
                "--embeddings",
                str(e1),
                str(e2),
                "--projections",
                str(tmp_path / "p1.zarr"),
                str(tmp_path / "p2.zarr"),
                "--anchors",
                str(anchors),
                "--k",
                "4",
            ]
        )
        == 0
    )
    embedding = open_store(e1)
    projection = open_store(tmp_path / "p1.zarr")
    rows = open_store(anchors)["anchor_atom"].values
    x = embedding["embedding"].values.astype(np.float64)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    np.testing.assert_allclose(projection["coordinate"].values, unit @ unit[rows].T, atol=1e-6)
    assert embedding.attrs["model_checkpoint"] == "0.3.0"
    similarity_store = open_store(tmp_path / "sim.zarr")
    sim = similarity_store["similarity"]
    diagonal = np.diagonal(sim.values, axis1=2, axis2=3)  # (metric, space, model)
    for i, metric in enumerate(sim.metric.values):
        if metric in ("gfre", "lfre"):
            continue  # 97 atoms are fewer than CHGNet's 64 features need for a regression; see test_similarity
        expected = 1.0 if metric in SIMILARITIES else 0.0
        if metric == "information_imbalance":
            expected = 2 / similarity_store.attrs["n_atoms"]  # each atom's neighbour has rank 1 in its own space
        np.testing.assert_allclose(diagonal[i], expected, atol=1e-6, err_msg=str(metric))
    assert main(["heatmaps", str(tmp_path / "sim.zarr"), "--out-dir", str(tmp_path / "figs")]) == 0
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == sorted(f"{m}.png" for m in METRICS)


def test_prefetch_records_the_checkpoint_it_loaded(tmp_path):
    import json

    from platonic.models.base import file_sha256

    assert main(["prefetch", str(tmp_path / "w.json"), "--model", "sevennet-0-22may2024"]) == 0
    record = json.loads((tmp_path / "w.json").read_text())
    assert record["model"] == "sevennet-0-22may2024" and record["family"] == "sevenn"
    from sevenn import util

    path = util.pretrained_name_to_path("7net-0_22May2024")
    assert record["checkpoint_sha256"] == file_sha256(path)


def test_every_command_prints_its_help(capsys):
    """Each subcommand's --help renders (a '%' in a schema description once broke argparse's help), and a key two
    settings sections share gets a prefixed flag (layers' metrics: --layers-metrics)."""
    for command in commands():
        with pytest.raises(SystemExit) as exit_:
            main([command, "--help"])
        assert exit_.value.code == 0, command
        text = capsys.readouterr().out
        assert text.startswith("usage: platonic " + command), command
    with pytest.raises(SystemExit):
        main(["layers", "--help"])
    text = capsys.readouterr().out
    flat = " ".join(text.split())
    assert "--layers-metrics" in flat and "--metrics METRICS" in flat and "95 % percentile" in flat


ROOT = Path(__file__).resolve().parents[1]


def rule_commands() -> dict[str, str]:
    """``{rule: its shell command}`` of every rule in workflow/rules/*.smk, read from the files' text: the string
    literals after ``shell:``, joined."""
    found = {}
    for path in sorted((ROOT / "workflow/rules").glob("*.smk")):
        for block in re.split(r"^\s*rule ", path.read_text(), flags=re.M)[1:]:
            name = block.split(":", 1)[0]
            shell = block.split("shell:", 1)[1] if "shell:" in block else ""
            words = []
            for line in shell.splitlines()[1:]:
                if not line.strip().startswith('"'):
                    break
                words.append(ast.literal_eval(line.strip()))
            found[name] = "".join(words)
    return found


def test_every_rule_runs_the_command_of_its_name_with_flags_the_command_knows():
    """Read independently of the parser's construction: each rule's shell line names a command whose name is the
    rule's with hyphens (an overview rule: the command, then the figure it draws), passes positional arguments
    as many as the command has, only flags the command knows and every flag it requires."""
    parser = argparse.ArgumentParser()
    parsers = parser.add_subparsers()
    known = commands()
    ruled = set()
    for rule, shell in rule_commands().items():
        match = re.search(r"-m platonic ([\w-]+) (.*?)(?: >|$)", shell)
        if match is None:
            assert rule in {"prefetch_all", "run_parameters"} and "platonic" not in shell, rule
            continue
        name, words = match.group(1), shlex.split(re.sub(r"\{[^}]*\}", "X", match.group(2)))
        assert name in known, f"rule {rule} runs an unknown command {name}"
        ruled.add(name)
        sub = parsers.add_parser(f"{rule}/{name}")
        add_arguments(sub, known[name])
        positional = [a for a in sub._actions if not a.option_strings]
        given = words[: next((i for i, w in enumerate(words) if w.startswith("--")), len(words))]
        assert len(given) == len(positional), f"rule {rule}: {given} for {[a.dest for a in positional]}"
        # screen_prepare, screen_embed, screen_project: the same steps on the screened structures (workflow/rules/
        # screen.smk), written under results/screen/<name>/ so that the study's stores are never rewritten; likewise
        # phonons_embed, the embed step on the phonon supercells (workflow/rules/phonons.smk)
        if rule != name.replace("-", "_") and rule not in (f"screen_{name}", f"phonons_{name}"):
            assert positional[0].choices and rule == f"{name}_{given[0]}" and given[0] in positional[0].choices, rule
        flags = {w for w in words if w.startswith("--")}
        options = {o for a in sub._actions for o in a.option_strings}
        assert flags <= options, f"rule {rule}: unknown flags {flags - options}"
        required = {a.option_strings[0] for a in sub._actions if a.option_strings and a.required}
        assert required <= flags, f"rule {rule}: leaves out {required - flags}"
    # every command is some rule's, but the one-process fan-in and the model list
    assert set(known) - ruled == {"similarity", "models"}


def toy(
    table: str,
    source: Annotated[str, "where the rows come from"],
    *,
    stores: list[str],
    pair: tuple[str, str],
    settings: SymmetrySettings,
    formats: tuple[Literal["svg", "pdf"], ...] = (),
    figure: str | None = None,
    quiet: bool = False,
    progress: bool = True,
) -> None:
    """A stage of every kind
    of parameter.

    Its second paragraph is not the help."""


def test_a_stage_signature_gives_its_arguments():
    parser = argparse.ArgumentParser()
    add_arguments(parser, toy)
    base = ["t.csv", "rows", "--stores", "a", "b", "c", "--pair", "x", "y"]
    assert vars(parser.parse_args(base)) == {
        "table": "t.csv",
        "source": "rows",
        "stores": ["a", "b", "c"],
        "pair": ["x", "y"],
        "settings": None,  # the section's JSON; absent, every field takes the schema's default
        "formats": (),
        "figure": None,
        "quiet": False,
        "progress": True,
    }
    args = vars(parser.parse_args([*base, "--formats", "svg", "pdf", "--quiet", "--no-progress", "--threshold", "0.5"]))
    assert (args["formats"], args["quiet"], args["progress"], args["settings.threshold"]) == (["svg", "pdf"], True,
                                                                                              False, 0.5)  # fmt: skip
    assert "settings.seed" not in args  # a setting not given is left to --settings and the schema
    for wrong in (base[:4], base[:2] + ["--pair", "x"], [*base, "--formats", "png"], base[:1] + base[2:]):
        with pytest.raises(SystemExit):
            parser.parse_args(wrong)
    text = " ".join(parser.format_help().split())
    schema = yaml.safe_load((ROOT / "src/platonic/config.schema.yaml").read_text())
    threshold = schema["properties"]["analysis"]["properties"]["symmetry"]["properties"]["threshold"]
    assert f"(default {threshold['default']})" in text
    assert "source where the rows come from" in text and "--stores STORES [STORES ...]" in text


def test_a_registered_stage_is_a_command_of_its_name(monkeypatch, capsys):
    received = {}

    def compare_toys(output: str, *, settings: SymmetrySettings, also: tuple[str, ...] = ()) -> None:
        """Compare toys."""
        received.update(output=output, settings=settings, also=also)

    monkeypatch.setattr(compare_toys, "__module__", "platonic.stages.toys")
    monkeypatch.setitem(registry.COMMANDS, "compare-toys", compare_toys)  # removed again after the test
    assert registry.command(compare_toys) is compare_toys and compare_toys.command_help == "Compare toys."
    monkeypatch.setitem(registry.COMMANDS, "toy", toy)
    assert registry.command(toy).command_help == "A stage of every kind of parameter."  # the first paragraph
    assert main(["compare-toys", "o", "--settings", '{"seed": 3}', "--threshold", "0.25"]) == 0
    assert received == {"output": "o", "settings": SymmetrySettings(threshold=0.25, seed=3), "also": ()}

    def run(output: str) -> None:
        pass

    run.__module__ = "platonic.stages.compare_toys"
    assert registry.command_name(run) == "compare-toys"  # a module's run takes the module's name
    with pytest.raises(ValueError, match="two stage functions are named 'compare-toys'"):
        registry.command(run)


def test_the_readme_runs_stages_by_hand_with_commands_that_parse():
    """Every command of the README's "Running stages by hand" block is accepted as written."""
    text = (ROOT / "README.md").read_text().split("## Running stages by hand")[1]
    block = text.split("```bash")[1].split("```")[0].replace("\\\n", " ")
    lines = [line for line in block.splitlines() if line.startswith("platonic ")]
    assert len(lines) >= 10
    parser = _parser()
    for line in lines:
        parser.parse_args(shlex.split(line)[1:])  # exits (and fails the test) on an unknown command or flag

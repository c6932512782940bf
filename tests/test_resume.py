"""Killed embed jobs: resumable shards, nothing half-written taken for finished, bit-identical reruns.

The embed stage runs here through the real command line in a subprocess, with a closed-form adapter of our own
(``family = "module:Class"``) that can be slowed down so the process can be SIGKILLed between shards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from platonic.cli import main
from platonic.embedding import embed_sharded, embed_structures, shard_fingerprint
from platonic.models.base import Adapter, Loaded
from platonic.store import StoreError, open_store

ROOT = Path(__file__).resolve().parents[1]

ADAPTER = textwrap.dedent(
    '''
    import os
    import time
    from pathlib import Path

    import numpy as np

    from platonic.models.base import Adapter, Loaded


    class Geometric(Adapter):
        """features = smooth functions of each atom's neighbourhood (float32); logs what it embeds."""

        family = "geometric"
        package = "numpy"

        def _load(self):
            return Loaded(Path(__file__), frozenset(range(1, 119)), "closed form")

        def _embed_batch(self, structures):
            with open(os.environ["GEOMETRIC_LOG"], "a") as log:
                for atoms in structures:
                    log.write(atoms.get_chemical_formula() + "\\n")
            time.sleep(float(os.environ.get("GEOMETRIC_DELAY", "0")))
            out = []
            for atoms in structures:
                d = atoms.get_all_distances(mic=True)
                np.fill_diagonal(d, np.inf)
                x = np.stack([np.exp(-d).sum(1), (1 / d**2).sum(1), d.min(1), atoms.numbers / 10.0], axis=1)
                out.append(x.astype(np.float32))
            return out
    '''
)


@pytest.fixture
def workspace(tmp_path, sample_csv):
    (tmp_path / "geometric_adapter.py").write_text(ADAPTER)
    structures = tmp_path / "s.zarr"
    assert main(["prepare", str(sample_csv), str(structures), "--limit", "12"]) == 0
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT / "src")]))
    return tmp_path, structures, env


def _embed(structures, output, env, log, delay=0.0):
    command = [sys.executable, "-m", "platonic", "embed", str(structures), str(output), "--model", "geo"]
    command += ["--family", "geometric_adapter:Geometric", "--checkpoint", "none", "--device", "cpu"]
    command += ["--batch-size", "2", "--shard-size", "3", "--no-progress"]
    environment = dict(env, GEOMETRIC_LOG=str(log), GEOMETRIC_DELAY=str(delay))
    return subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finished_shards(output: Path) -> list[Path]:
    shards = output.with_name(f".{output.name}.shards")
    return sorted(p for p in shards.glob("structures-*.zarr")) if shards.exists() else []


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_redoes_only_unfinished_shards_bit_identically(workspace):
    tmp, structures, env = workspace
    # the uninterrupted reference run
    reference = tmp / "reference.zarr"
    proc = _embed(structures, reference, env, tmp / "reference.log")
    assert proc.wait(timeout=120) == 0, proc.stdout.read()
    assert not reference.with_name(f".{reference.name}.shards").exists()  # cleaned up once complete

    # 12 structures in 4 shards of 3, 2 batches per shard, 0.5 s per batch: kill once two shards are on disk
    output = tmp / "killed.zarr"
    proc = _embed(structures, output, env, tmp / "killed.log", delay=0.5)
    deadline = time.monotonic() + 120
    while len(_finished_shards(output)) < 2:
        assert proc.poll() is None, f"embed finished before it could be killed: {proc.stdout.read()}"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not output.exists()  # the store itself is only ever renamed into place when complete
    with pytest.raises(StoreError):
        open_store(output)
    done = len(_finished_shards(output))
    assert 2 <= done < 4

    proc = _embed(structures, output, env, tmp / "rerun.log")
    assert proc.wait(timeout=120) == 0, proc.stdout.read()
    log = proc.stdout.read() if proc.stdout else ""
    assert f"resuming: {done} of 4 shards" in log
    # only the structures of unfinished shards were embedded again
    assert len((tmp / "rerun.log").read_text().split()) == 12 - 3 * done

    first, second = open_store(reference).load(), open_store(output).load()
    assert first["embedding"].dtype == np.float32
    np.testing.assert_array_equal(first["embedding"].values, second["embedding"].values)
    np.testing.assert_array_equal(first["valid"].values, second["valid"].values)
    assert first["embedding"].shape == (int(first["valid"].size), 4)
    assert np.isfinite(first["embedding"].values).all()


class Counting(Adapter):
    """features = [Z, n_atoms]; counts the structures it embeds; refuses Ne (excluded) and knows Z <= 20."""

    family = "counting"
    package = "numpy"
    seen = 0

    def _load(self):
        return Loaded(Path(__file__), frozenset(range(1, 21)), "closed form")

    def _embed_batch(self, structures):
        self.seen += len(structures)
        return [np.stack([a.numbers, np.full(len(a), len(a))], 1).astype(np.float64) for a in structures]


def _structures():
    import ase

    formulas = ["LiF", "NaCl", "XeF2", "MgO", "CaO", "KCl", "Xe", "Xe2"]
    return [ase.Atoms(f, positions=np.arange(len(ase.Atoms(f)))[:, None] * [1.4, 0, 0], cell=[8] * 3) for f in formulas]


def test_shards_equal_one_pass_and_exclusions_survive_the_shard_files(tmp_path):
    structures = _structures()
    whole = embed_structures(Counting(batch_size=2), structures, progress=False)
    sharded = embed_sharded(Counting(batch_size=2), structures, tmp_path / "shards", 2, "f", progress=False)
    # reading everything back from the shard files gives the same numbers and reasons
    again = Counting(batch_size=2)
    reread = embed_sharded(again, structures, tmp_path / "shards", 2, "f", progress=False)
    assert again.seen == 0
    for result in (sharded, reread):
        np.testing.assert_array_equal(result[0], whole[0])
        np.testing.assert_array_equal(result[1], whole[1])
        assert result[2] == whole[2]
    assert whole[2][2] == "elements not supported by the model: Xe"
    assert whole[2][6] == whole[2][7] == "elements not supported by the model: Xe"  # a shard with no features
    assert np.isnan(whole[0][~whole[1]]).all() and whole[1].sum() == 10
    np.testing.assert_array_equal(whole[0][:2], [[3, 2], [9, 2]])


def test_shards_from_other_settings_or_half_written_are_recomputed(tmp_path):
    structures = _structures()
    shards = tmp_path / "shards"
    embed_sharded(Counting(batch_size=2), structures, shards, 3, "old", progress=False)
    files = sorted(shards.glob("structures-*.zarr"))
    assert len(files) == 3
    # an interrupted write: the shard store lost its completeness marker
    (files[1] / "zarr.json").write_text((files[1] / "zarr.json").read_text().replace('"complete": true', '"x": 1'))
    adapter = Counting(batch_size=2)
    embed_sharded(adapter, structures, shards, 3, "old", progress=False)
    assert adapter.seen == 3  # only the middle shard (MgO, CaO, KCl) again
    adapter = Counting(batch_size=2)
    embed_sharded(adapter, structures, shards, 3, "new", progress=False)
    assert adapter.seen == 5  # other settings: everything but the three Xe structures again


def test_fingerprint_changes_with_what_the_numbers_depend_on():
    base = {"structure_set_hash": "a", "provenance": {"checkpoint_sha256": "x"}, "batch_size": 2, "shard_size": 3}
    assert shard_fingerprint(**base) == shard_fingerprint(**dict(base))
    for key, value in [("structure_set_hash", "b"), ("provenance", {"checkpoint_sha256": "y"}), ("batch_size", 4)]:
        assert shard_fingerprint(**dict(base, **{key: value})) != shard_fingerprint(**base)
    with pytest.raises(ValueError, match="shard_size"):
        embed_sharded(Counting(), _structures(), Path("unused"), 0, "f", progress=False)

"""Stage ``screen``: new structures read against a finished study in its shared space.

The workflow prepares the new structures (`platonic prepare`, with its bad-structure handling), embeds them with
every model of the study and projects them through the study's anchor set (`platonic project FILE
--anchor-embedding`, the anchor rows from the study's own embedding stores), all under ``results/screen/<name>/``;
this stage reads those and the study's stores (never writing them) and writes the screen's tables, store, figure and
page into ``output``.
"""

from __future__ import annotations

import base64
import html
import io
import logging
from pathlib import Path
from typing import Annotated

import numpy as np
import xarray as xr

from platonic.settings import ScreenSettings
from platonic.stages.command import Controls, command
from platonic.stages.common import compared_mask, model_stores, write_rows

log = logging.getLogger("platonic")

OUTPUTS = ("atoms.csv", "structures.csv", "rejected.csv", "screen.zarr", "screen.png", "screen.html")


@command(help="screen new structures against a finished study: atypicality, disagreement, nearest environments")
def run(
    output: Annotated[str, "the screen's folder: atoms.csv, structures.csv, rejected.csv, screen.zarr, screen.png,"
                      " screen.html"],
    *,
    structures: Annotated[str, "the structure store of the screened structures (`platonic prepare`)"],
    embeddings: Annotated[tuple[str, ...], "every model's embedding store of the screened structures"],
    projections: Annotated[tuple[str, ...], "every model's projection of them on the study's anchor set"],
    study_projections: Annotated[tuple[str, ...], "the study's projection store of each model"],
    study_structures: Annotated[str, "the study's structure store"],
    anchors: Annotated[str, "the study's anchor store"],
    settings: ScreenSettings,
    controls: Controls = (),
) -> None:  # fmt: skip
    """Per screened atom and structure: atypicality per model and as a consensus (percentiles of the study's own
    distribution; the consensus over the trained models, the controls left out as in the audit), cross-model
    disagreement (over the trained models too), the nearest study environments (every model), symmetry-breaking
    spread and the models' predictions where their embedding stores hold them; rejected structures with reasons."""
    from ase.data import chemical_symbols

    from platonic.analysis.screening import consensus_nearest, screen_environments
    from platonic.store import check_same_structures, open_store, write_store

    anchor_store = open_store(anchors, kind="anchors")
    study = model_stores(study_projections, "projection")
    screened = model_stores(projections, "projection")
    embedded = model_stores(embeddings, "embedding")
    if set(screened) != set(study) or set(embedded) != set(study):
        raise ValueError(
            f"the screen needs every study model's embedding and projection of the screened structures: the study has"
            f" {sorted(study)}, the projections {sorted(screened)}, the embeddings {sorted(embedded)}"
        )
    models = list(study)
    for model in models:
        if screened[model].attrs.get("anchor_set_hash") != anchor_store.attrs["anchor_set_hash"]:
            raise ValueError(f"the screened projection of {model} was made with other anchors than {anchors}")
        if study[model].attrs.get("anchor_set_hash") != anchor_store.attrs["anchor_set_hash"]:
            raise ValueError(f"the study's projection of {model} was made with other anchors than {anchors}")
    store = open_store(structures, kind="structures").load()
    study_store = open_store(study_structures, kind="structures")
    check_same_structures(study_store, anchor_store, *study.values())  # the study's own stores
    check_same_structures(store, *screened.values(), *embedded.values())  # the screened structures' stores
    compared = compared_mask(anchor_store, study)
    study_rows = np.flatnonzero(compared)
    study_coordinates = {m: s["coordinate"].values[study_rows] for m, s in study.items()}
    queries = {}
    for model, projection in screened.items():
        values = projection["coordinate"].values.astype(np.float64)
        values[~projection["valid"].values.astype(bool)] = np.nan
        queries[model] = values
    groups = study_store["structure_index"].values[study_rows]
    trained = [m for m in models if m not in controls] or models
    result = screen_environments(queries, study_coordinates, groups, settings.k, consensus_models=trained)
    near, near_distance = consensus_nearest(queries, study_coordinates, settings.nearest)
    spread = symmetry_spread(queries, store)

    study_ids = texts(study_store["structure_id"].values[study_rows])
    study_sites = study_store["site"].values[study_rows]
    study_z = study_store["Z"].values[study_rows]
    ids = texts(store["structure_id"].values)
    sites, z = store["site"].values, store["Z"].values
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)

    def nearest_text(i: int) -> str:
        return "; ".join(
            f"{study_ids[j]} {chemical_symbols[int(study_z[j])]}{int(study_sites[j])} {d:.4f}"
            for j, d in zip(near[i], near_distance[i], strict=True)
            if j >= 0
        )

    atom_rows = []
    for i in range(len(ids)):
        row = {
            "structure_id": ids[i], "site": int(sites[i]), "element": chemical_symbols[int(z[i])], "Z": int(z[i]),
            "atypicality_percentile": result.consensus_percentile[i], "disagreement": result.disagreement[i],
            "disagreement_percentile": result.disagreement_percentile[i], "symmetry_spread": spread[i],
            "nearest": nearest_text(i),
        }  # fmt: skip
        for m, model in enumerate(models):
            row[f"percentile_{model}"] = result.percentile[m, i]
        atom_rows.append(row)
    write_rows(out / "atoms.csv", atom_rows)

    structure_rows = structure_table(store, result, spread, near, near_distance, models, embedded, study_ids,
                                     study_z)  # fmt: skip
    write_rows(out / "structures.csv", structure_rows)
    rejected = [
        {"structure_id": sid, "model": "", "reason": reason}
        for sid, reason in zip(store.attrs.get("rejected_ids", []), store.attrs.get("rejected_reasons", []),
                               strict=True)
    ]  # fmt: skip
    for model, emb in embedded.items():
        for sid, reason in zip(store["material_id"].values, emb["exclusion_reason"].values, strict=True):
            if reason:
                rejected.append({"structure_id": str(sid), "model": model, "reason": str(reason)})
    write_rows(out / "rejected.csv", rejected, columns=["structure_id", "model", "reason"])

    ds = xr.Dataset(
        {
            "coordinate": (("model", "atom", "anchor"), np.stack([queries[m] for m in models]).astype(np.float32)),
            "atypicality": (("model", "atom"), result.atypicality),
            "percentile": (("model", "atom"), result.percentile),
            "nearest_study_atom": (("model", "atom"), np.where(result.nearest >= 0, study_rows[result.nearest], -1)),
            "atypicality_percentile": (("atom",), result.consensus_percentile),
            "disagreement": (("atom",), result.disagreement),
            "disagreement_percentile": (("atom",), result.disagreement_percentile),
            "symmetry_spread": (("atom",), spread),
            "nearest": (("atom", "neighbour"), np.where(near >= 0, study_rows[np.maximum(near, 0)], -1)),
            "nearest_distance": (("atom", "neighbour"), near_distance),
        },
        coords={
            "model": np.array(models, dtype=object),
            "atom": store["atom"].values,
            "structure_id": ("atom", ids),
            "site": ("atom", sites),
            "Z": ("atom", z),
            "anchor": np.arange(anchor_store.sizes["anchor"]),
        },
        attrs={
            "kind": "screen",
            "name": settings.name,
            "k": settings.k,
            "consensus_models": trained,
            "anchor_set_hash": anchor_store.attrs["anchor_set_hash"],
            "study_structure_set_hash": study_store.attrs["structure_set_hash"],
            "structure_set_hash": store.attrs["structure_set_hash"],
            "n_study_atoms": len(study_rows),
            "n_rejected": len(rejected),
        },
    )
    write_store(ds, out / "screen.zarr")

    from platonic.figures.screen import screen_figure
    from platonic.figures.style import save_figure

    fig = screen_figure({m: result.percentile[i] for i, m in enumerate(models)}, result.consensus_percentile,
                        settings.name)  # fmt: skip
    save_figure(fig, out / "screen.png")
    map_page = "map.html" if (out / "map.html").exists() else None  # rule screen_map writes it beside the page
    (out / "screen.html").write_text(screen_page(settings, structure_rows, rejected, out / "screen.png", models,
                                                 map_page))  # fmt: skip
    log.info(
        "screen %s: %d structures, %d atoms against %d study environments (%d models); median atypicality percentile"
        " %.1f; %d rejected or excluded -> %s",
        settings.name, len(store["structure"]), len(ids), len(study_rows), len(models),
        float(np.nanmedian(result.consensus_percentile)), len(rejected), out,
    )  # fmt: skip


def symmetry_spread(queries: dict[str, np.ndarray], store: xr.Dataset) -> np.ndarray:
    """Per screened atom ``(Q,)``, the largest over models of its orbit's relative spread in the shared space
    (`platonic.symmetry.symmetry_breaking` on each model's unit rows of the atoms it embedded): 0 for an atom
    without symmetry copies, NaN where no model embedded it."""
    from platonic.compare.neighbours import unit_rows
    from platonic.symmetry import symmetry_breaking

    orbit, structure, z = store["orbit"].values, store["structure_index"].values, store["Z"].values
    spread = np.full(len(orbit), np.nan)
    for values in queries.values():
        ok = np.isfinite(values).all(axis=1)
        if np.unique(orbit[ok]).size < 2:
            continue
        result = symmetry_breaking(unit_rows(values[ok]), orbit[ok], structure[ok], z[ok])
        relative = dict(zip(result.orbit.tolist(), result.relative.tolist(), strict=True))
        atoms = np.flatnonzero(ok)
        per_atom = np.array([relative[o] for o in orbit[ok]])
        spread[atoms] = np.fmax(spread[atoms], per_atom)
    return spread


def structure_table(store, result, spread, near, near_distance, models, embedded, study_ids, study_z) -> list[dict]:
    """One row per screened structure, most atypical first: the mean over its atoms of the consensus percentile,
    its most atypical atom and that atom's nearest study environment, mean disagreement, largest symmetry spread,
    each model's mean percentile and, where the embedding stores hold them, the models' predictions."""
    from ase.data import chemical_symbols

    starts, counts = store["first_atom"].values, store["n_atoms"].values
    ids, sites, z = texts(store["material_id"].values), store["site"].values, store["Z"].values
    rows = []
    for s, (start, n) in enumerate(zip(starts, counts, strict=True)):
        atoms = slice(start, start + n)
        consensus = result.consensus_percentile[atoms]
        row = {"structure_id": ids[s], "formula": formula(z[atoms]), "n_atoms": int(n),
               "n_atoms_every_model_embedded": int(np.isfinite(consensus).sum())}  # fmt: skip
        if np.isfinite(consensus).any():
            top = start + int(np.nanargmax(consensus))
            nearest = near[top, 0]
            row.update(
                atypicality_percentile=float(np.nanmean(consensus)),
                max_atypicality_percentile=float(np.nanmax(consensus)),
                most_atypical_atom=f"{chemical_symbols[int(z[top])]}{int(sites[top])}",
                its_nearest_study_environment=f"{study_ids[nearest]} {chemical_symbols[int(study_z[nearest])]}",
                its_nearest_distance=float(near_distance[top, 0]),
                disagreement=float(np.nanmean(result.disagreement[atoms])),
                disagreement_percentile=float(np.nanmean(result.disagreement_percentile[atoms])),
                symmetry_spread=float(np.nanmax(spread[atoms])),
            )
        for m, model in enumerate(models):
            values = result.percentile[m, atoms]
            row[f"percentile_{model}"] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
        for model in models:
            emb = embedded[model]
            if "energy_per_atom" in emb:
                row[f"energy_per_atom_{model}"] = float(emb["energy_per_atom"].values[s])
            if "forces" in emb:
                row[f"max_force_{model}"] = float(np.linalg.norm(emb["forces"].values[atoms], axis=1).max())
        rows.append(row)
    columns = list(dict.fromkeys(key for row in rows for key in row))  # first seen first; a row may lack some
    rows = [{key: row.get(key, float("nan")) for key in columns} for row in rows]
    rows.sort(key=lambda row: -np.nan_to_num(row.get("atypicality_percentile", np.nan), nan=-1.0))
    return [{"rank": rank, **row} for rank, row in enumerate(rows, start=1)]


def texts(values: np.ndarray) -> np.ndarray:
    """Strings of a store's string variable (numpy's StringDType or object) as an object array."""
    return np.array([str(v) for v in values], dtype=object)


def formula(z: np.ndarray) -> str:
    """The cell's formula of atomic numbers ``z (n,)`` (not reduced), elements in alphabetical order."""
    from ase.data import chemical_symbols

    values, counts = np.unique(z, return_counts=True)
    parts = sorted((chemical_symbols[int(v)], int(c)) for v, c in zip(values, counts, strict=True))
    return "".join(f"{symbol}{count if count > 1 else ''}" for symbol, count in parts)


def screen_page(settings: ScreenSettings, rows: list[dict], rejected: list[dict], figure: Path,
                models: list[str], map_page: str | None = None) -> str:  # fmt: skip
    """A self-contained HTML page: the figure (embedded PNG), the ``settings.top`` most atypical structures, the
    rejected and excluded structures with their reasons."""
    image = base64.b64encode(Path(figure).read_bytes()).decode()
    shown = ["rank", "structure_id", "formula", "n_atoms", "atypicality_percentile", "max_atypicality_percentile",
             "most_atypical_atom", "its_nearest_study_environment", "its_nearest_distance", "disagreement_percentile",
             "symmetry_spread"]  # fmt: skip

    def cell(value) -> str:
        return f"{value:.3g}" if isinstance(value, float) else html.escape(str(value))

    buffer = io.StringIO()
    buffer.write(
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>screen {html.escape(settings.name)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:0.85em}"
        "td,th{border:1px solid #ccc;padding:2px 6px}</style></head><body>"
        f"<h1>Screen {html.escape(settings.name)}</h1><p>{len(rows)} structures read against the study's own"
        f" environments by {len(models)} models ({html.escape(', '.join(models))}); atypicality: mean cosine"
        f" distance to the {settings.k} nearest study environments, as a percentile of the study's own atoms (50:"
        " typical; 100: beyond every study atom), averaged over the trained models (controls left out) and over the"
        " structure's atoms. Full tables:"
        " structures.csv, atoms.csv."
        + (
            f" The <a href='{html.escape(map_page)}'>interactive map</a> shows them, marked, among the study's"
            " environments."
            if map_page
            else ""
        )
        + "</p>"
        f"<img alt='atypicality percentiles' src='data:image/png;base64,{image}' width='640'>"
        f"<h2>The {min(settings.top, len(rows))} most atypical structures</h2><table><tr>"
    )
    buffer.write("".join(f"<th>{html.escape(c)}</th>" for c in shown) + "</tr>")
    for row in rows[: settings.top]:
        buffer.write(f"<tr id='{html.escape(str(row['structure_id']))}'>")
        buffer.write("".join(f"<td>{cell(row.get(c, ''))}</td>" for c in shown) + "</tr>")
    buffer.write(f"</table><h2>Rejected or excluded ({len(rejected)})</h2><table><tr><th>structure_id</th>"
                 "<th>model</th><th>reason</th></tr>")  # fmt: skip
    for row in rejected:
        buffer.write("<tr>" + "".join(f"<td>{cell(row[c])}</td>" for c in ("structure_id", "model", "reason")))
        buffer.write("</tr>")
    buffer.write("</table></body></html>\n")
    return buffer.getvalue()

"""The provenance page of the report: models, package versions, checkpoint hashes, structures, anchors,
exclusions and the run's parameters, as one self-contained HTML file built from the stores' attributes."""

from __future__ import annotations

import html
import json
from collections import Counter

import numpy as np
import xarray as xr

MODEL_COLUMNS = {
    "model": "model",
    "model_family": "family",
    "model_package": "package",
    "model_package_version": "version",
    "model_checkpoint": "checkpoint",
    "model_checkpoint_file": "checkpoint file",
    "model_checkpoint_sha256": "checkpoint sha256",
    "model_parameters": "parameters",  # counted from the loaded model (0 for a weight-free control)
    "model_layer": "layer",
    "model_forward_dtype": "dtype",
    "model_device": "device",
    "model_options": "options",
    "n_excluded_structures": "excluded structures",
    "n_excluded_atoms": "excluded atoms",
}


def model_rows(embeddings: list[xr.Dataset]) -> list[dict[str, str]]:
    """One row per embedding store: its provenance attributes and how many structures/atoms it excluded."""
    rows = []
    for store in embeddings:
        attrs = dict(store.attrs)
        attrs["n_excluded_atoms"] = int((~store["valid"].values.astype(bool)).sum())
        attrs["n_excluded_structures"] = len(exclusions(store))
        rows.append({label: _text(attrs.get(key, "")) for key, label in MODEL_COLUMNS.items()})
    return rows


def exclusions(store: xr.Dataset) -> list[tuple[str, str]]:
    """(structure id, reason) of every structure an embedding store excluded."""
    if "exclusion_reason" not in store:
        return []
    reasons = [str(r) for r in store["exclusion_reason"].values]
    first = store["structure_id"].values
    # the structure ids in structure order: the id of each structure's first atom
    starts = np.flatnonzero(np.r_[True, first[1:] != first[:-1]])
    ids = [str(first[s]) for s in starts] if len(starts) == len(reasons) else [str(i) for i in range(len(reasons))]
    return [(ids[i], reason) for i, reason in enumerate(reasons) if reason]


def exclusion_rows(embeddings: list[xr.Dataset]) -> list[dict[str, str]]:
    """Every excluded structure with the model that excluded it and why (identical reasons counted once per model)."""
    rows = []
    for store in embeddings:
        excluded = exclusions(store)
        for reason, count in Counter(reason for _, reason in excluded).items():
            ids = [i for i, r in excluded if r == reason]
            shown = ", ".join(ids[:10]) + (f" (+{len(ids) - 10} more)" if len(ids) > 10 else "")
            model = str(store.attrs.get("model", ""))
            rows.append({"model": model, "structures": f"{count}: {shown}", "reason": reason})
    return rows


def data_rows(structures: xr.Dataset, anchors: xr.Dataset, similarity: xr.Dataset) -> list[dict[str, str]]:
    """Key/value rows for the structure set, the anchors and the comparison."""
    rejected = list(structures.attrs.get("rejected_ids", []))
    method, n_anchors = anchors.attrs.get("method"), anchors.sizes.get("anchor")
    if method == "indices":  # given, not drawn: the seed played no part, the file did
        sha, source = str(anchors.attrs.get("indices_sha256", ""))[:12], anchors.attrs.get("indices_source")
        anchor_choice = f"indices, {n_anchors}, given by {source} ({sha})"
    else:
        anchor_choice = f"{method}, {n_anchors}, {anchors.attrs.get('seed')}"
    pairs = [
        ("structure source", structures.attrs.get("source", "")),
        ("structures (atoms)", f"{structures.attrs.get('n_structures', '?')} ({structures.attrs.get('n_atoms', '?')})"),
        ("structure_set_hash", structures.attrs.get("structure_set_hash", "")),
        ("structures rejected while parsing", len(rejected)),
        ("anchor method, n, seed (or source)", anchor_choice),
        ("anchor reference model", anchors.attrs.get("reference_model", "")),
        ("anchor_set_hash", anchors.attrs.get("anchor_set_hash", "")),
        (
            "symmetry orbits (spglib, symprec in A)",
            f"{structures.attrs.get('n_orbits', '?')} distinct environments"
            f" of {structures.attrs.get('n_atoms', '?')} atoms (symprec {structures.attrs.get('symprec', '?')})",
        ),
        ("structures without symmetry analysis", structures.attrs.get("n_symmetry_unanalysed", "")),
        (
            "what counts as an atom (similarity.atoms, weights, neighbours)",
            f"{similarity.attrs.get('atoms', '')}, {similarity.attrs.get('weights', '')},"
            f" {similarity.attrs.get('neighbours', '')}",
        ),
        ("atoms every model embedded", similarity.attrs.get("n_valid_atoms", "")),
        ("atoms compared (after dropping symmetry copies)", similarity.attrs.get("n_atoms", "")),
        ("symmetry copies left out", similarity.attrs.get("n_symmetry_copies_left_out", "")),
        (
            "atoms left out of every comparison (a model could not embed them)",
            similarity.attrs.get("n_excluded_atoms", ""),
        ),
        ("atoms behind each metric", ", ".join(f"{m}: {int(n)}" for m, n in _n_samples(similarity))),
        ("platonic version", similarity.attrs.get("platonic_version", "")),
    ]
    rows = [{"item": name, "value": _text(value)} for name, value in pairs]
    rows += [
        {"item": f"rejected {rid}", "value": str(reason)}
        for rid, reason in zip(rejected, structures.attrs.get("rejected_reasons", []), strict=False)
    ]
    return rows


def parameter_rows(parameters: dict) -> list[dict[str, str]]:
    """The run's configuration flattened to dotted keys, e.g. ``similarity.k``."""
    rows = []

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict) and value:
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        else:
            rows.append({"parameter": prefix, "value": _text(value)})

    walk("", parameters)
    return rows


def provenance_html(
    embeddings: list[xr.Dataset],
    structures: xr.Dataset,
    anchors: xr.Dataset,
    similarity: xr.Dataset,
    parameters: dict,
) -> str:
    """A self-contained HTML page with the models, data, exclusions and parameter tables."""
    excluded = exclusion_rows(embeddings)
    sections = [
        ("Models", model_rows(embeddings)),
        ("Structures, anchors and comparison", data_rows(structures, anchors, similarity)),
        ("Excluded structures and why", excluded or [{"model": "all", "structures": "0", "reason": "none excluded"}]),
        ("Run parameters", parameter_rows(parameters)),
        ("Checksums", _checksum_rows(embeddings, structures, anchors)),
    ]
    # hashes are shortened in the tables (full value on hover) and given in full, unbroken, under "Checksums"
    body = "\n".join(
        f"<h2>{html.escape(title)}</h2>\n{_table(rows, full_hashes=title == 'Checksums')}" for title, rows in sections
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>platonic provenance</title>
<style>
body {{ font-family: sans-serif; font-size: 13px; margin: 1em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 3px 6px; text-align: left; vertical-align: top; }}
th {{ background: #eef; }}
td {{ overflow-wrap: break-word; max-width: 40em; }}
td.hash {{ font-family: monospace; font-size: 11px; overflow-wrap: normal; white-space: nowrap; }}
div.scroll {{ overflow-x: auto; }}
</style></head>
<body>
<h1>Provenance</h1>
{body}
</body></html>
"""


def _checksum_rows(embeddings: list[xr.Dataset], structures: xr.Dataset, anchors: xr.Dataset) -> list[dict[str, str]]:
    rows = [
        {"what": f"{ds.attrs.get('model', '?')} checkpoint {ds.attrs.get('model_checkpoint_file', '')}",
         "sha256": str(ds.attrs.get("model_checkpoint_sha256", ""))}
        for ds in embeddings
    ]  # fmt: skip
    rows.append({"what": "structure set", "sha256": str(structures.attrs.get("structure_set_hash", ""))})
    rows.append({"what": "anchor set", "sha256": str(anchors.attrs.get("anchor_set_hash", ""))})
    return rows


def _table(rows: list[dict[str, str]], full_hashes: bool = False) -> str:
    if not rows:
        return "<p>none</p>"
    columns = list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    lines = []
    for row in rows:
        cells = []
        for c in columns:
            value = str(row.get(c, ""))
            if _is_hash(value) and not full_hashes:
                cells.append(f'<td class="hash" title="{value}">{value[:12]}&hellip;</td>')
            elif "sha256" in c or _is_hash(value):
                cells.append(f'<td class="hash">{html.escape(value)}</td>')
            else:
                cells.append(f"<td>{html.escape(value)}</td>")
        lines.append(f"<tr>{''.join(cells)}</tr>")
    return f'<div class="scroll"><table>\n<tr>{head}</tr>\n' + "\n".join(lines) + "\n</table></div>"


def _is_hash(value: str) -> bool:
    return len(value) == 64 and all(ch in "0123456789abcdef" for ch in value)


def _n_samples(similarity: xr.Dataset):
    if "n_samples" not in similarity:
        return []
    return zip((str(m) for m in similarity["metric"].values), similarity["n_samples"].values, strict=True)


def _text(value) -> str:
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True) if value else ""
    if value is None:
        return ""
    return str(value)

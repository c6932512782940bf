"""Stage ``prepare``: read and validate a structure file into the structure store (and fetch it first)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

from platonic.settings import DatasetSettings
from platonic.stages.command import command

log = logging.getLogger("platonic")


@command(help="parse and validate structures into a structure store")
def run(input: Annotated[str, "MP-20 CSV, extxyz file, CIF or folder of CIFs"], output: str,
        settings: DatasetSettings) -> None:  # fmt: skip
    """Structures of ``input`` (MP-20 CSV, extxyz, CIF or a folder of CIFs) -> structure store ``output``."""
    from platonic.store import structures_to_dataset, write_store
    from platonic.structures import read_structures

    structures = read_structures(input, limit=settings.limit, max_volume_per_atom=settings.max_volume_per_atom)
    for structure_id, reason in structures.rejected:
        log.warning("rejected structure %s: %s", structure_id, reason)
    ds = structures_to_dataset(structures, source=input, symprec=settings.symprec)
    # with symprec and source, what the workflow's start compares to the config (`platonic.config.check_inputs`)
    ds.attrs.update(limit=settings.limit, max_volume_per_atom=settings.max_volume_per_atom)
    for structure_id, reason in zip(ds["material_id"].values, ds["symmetry_reason"].values, strict=True):
        if reason:
            log.warning("no symmetry analysis of %s (one orbit per atom): %s", structure_id, reason)
    write_store(ds, output)
    log.info(
        "%d structures, %d atoms in %d symmetry orbits (symprec %g A) -> %s (%d rejected; the store's"
        " rejected_ids/rejected_reasons list them)",
        len(structures),
        structures.n_atoms,
        ds.attrs["n_orbits"],
        settings.symprec,
        output,
        len(structures.rejected),
    )


@command(help="download a structure file (needs network; used on clusters)")
def download(url: str, output: str) -> None:
    """Fetch ``url`` to ``output`` (written under a temporary name, renamed when complete)."""
    import shutil
    import urllib.request

    target = Path(output)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as handle:
            shutil.copyfileobj(response, handle)
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise RuntimeError(
            f"cannot download {url} ({err}); download it on a machine with network access and place it at {target}"
        ) from err
    partial.rename(target)
    log.info("downloaded %s -> %s", url, target)

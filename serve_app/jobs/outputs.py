"""A job's outputs as versioned folders, published in one step (no Ray, no FastAPI).

Under ``jobs/<job_id>/``::

    outputs/v<N>-<token>/     one complete set of outputs: version N, made by one run attempt
    outputs/.vt-staging-*/    a run attempt in progress: each its own folder, holding an flock while it lives
    out -> outputs/v<N>-<token>             a symlink: the current version (downloads read through it)
    versions/v<N> -> ../outputs/v<N>-<token>   earlier versions a re-dub keeps (plain folders in older stores)

``publish`` renames the attempt's folder to its version name and swaps ``out`` to it with one rename(2)
of a symlink, so a reader sees the old complete set or the new complete set, never a mix; a download
already open (Range requests included) keeps reading the file it opened. The worker calls ``publish``
inside the store's fenced finish (``JobStore.finish_if_held``): a worker that lost its lease publishes
nothing. A re-dub archives the previous version (``versions/v<N-1>``, a link to its folder) before the
swap, and only when ``out`` still holds N-1 (the version is in the folder's name): a rerun after a crash
between the swap and the store's finish never archives the new files as the old version. A re-dub's folder
also carries its plan's id (``v<N>-<spec>_<token>``): the rerun finishes that publish only if it is its own
plan's; a publish the store never recorded for another plan (the job was cancelled meanwhile, then edited
again) is rolled back to the recorded version first.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipelines.fileio import LOCK_NAME, is_live, staging_dir, swap_symlink

logger = logging.getLogger(__name__)

OUT = "out"
OUTPUTS = "outputs"
VERSIONS = "versions"
_PENDING = ".out.adopt"  # an older store's out/ folder being moved behind the link
_VERSION_NAME = re.compile(r"^v(\d+)-[0-9A-Za-z_]+$")  # v<N>-[<tag>_]<token>


def current(job_dir: Path) -> Path | None:
    """The folder ``out`` stands for (None: nothing published yet)."""
    out = job_dir / OUT
    if out.is_symlink():
        target = out.resolve()
        return target if target.is_dir() else None
    return out if out.is_dir() else None


def folder_version(folder: Path | None) -> int | None:
    """The version a published folder holds, from its name (None: not a version folder)."""
    match = _VERSION_NAME.match(folder.name) if folder is not None else None
    return int(match.group(1)) if match else None


def prefix(version: int, tag: str | None = None) -> str:
    """The start of the name of version ``version``'s folders (those of one re-dub plan with ``tag``)."""
    return f"v{version}-{tag}_" if tag else f"v{version}-"


def names(folder: Path) -> list[str]:
    """The output file names in ``folder`` (hidden files left out), sorted."""
    return sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def adopt_legacy(job_dir: Path, version: int) -> None:
    """A store made before versioned folders has a plain ``out/`` folder: move it to ``outputs/`` behind
    the link. Two renames with a recovery step, so a crash between them is finished by the next call."""
    out, pending = job_dir / OUT, job_dir / _PENDING
    if pending.is_symlink() and not out.exists() and not out.is_symlink():
        os.replace(pending, out)  # the folder moved; the link did not follow yet
        return
    if out.is_symlink() or not out.is_dir():
        return
    name = f"v{version}-legacy"
    (job_dir / OUTPUTS).mkdir(exist_ok=True)
    pending.unlink(missing_ok=True)
    os.symlink(f"{OUTPUTS}/{name}", pending)
    os.rename(out, job_dir / OUTPUTS / name)
    os.replace(pending, out)


def _referenced(job_dir: Path) -> set[Path]:
    """The folders something points at: ``out`` and the archived versions."""
    kept = {p for p in [current(job_dir)] if p is not None}
    versions = job_dir / VERSIONS
    if versions.is_dir():
        kept |= {p.resolve() for p in versions.iterdir() if p.is_symlink()}
    return kept


def sweep(job_dir: Path) -> list[Path]:
    """Remove the folders under ``outputs/`` that nothing points at and no live attempt holds (a dead
    attempt's, or a version published and dropped); returns them. A live worker's folder is never removed,
    even when that worker lost its lease: it holds an flock on it for as long as it runs."""
    root = job_dir / OUTPUTS
    removed = []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if folder.is_dir() and not folder.is_symlink() and not is_live(folder):
            if folder.resolve() in _referenced(job_dir):  # read again for each: a publish may have moved on
                continue
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def reconcile(job_dir: Path, recorded: int, keep: str | None = None) -> None:
    """Undo a publish the store never recorded: ``out`` holds a version newer than ``recorded`` (the job's
    ``output_version``) whose worker died between the swap and the finish, and its folder's name does not
    start with ``keep`` (the publish this attempt will finish itself). ``out`` goes back to the recorded
    version's folder (its archive link, made before that swap)."""
    held = current(job_dir)
    version = folder_version(held)
    if held is None or version is None or version <= recorded or (keep and held.name.startswith(keep)):
        return
    archived = job_dir / VERSIONS / f"v{recorded}"
    if archived.is_symlink() and archived.resolve().is_dir():
        logger.warning("job %s: out/ held an unrecorded v%d; back to v%d", job_dir.name, version, recorded)
        swap_symlink(job_dir / OUT, f"{OUTPUTS}/{archived.resolve().name}")


@contextmanager
def attempt(job_dir: Path, version: int, *, keep: str | None = None) -> Iterator[Path]:
    """A fresh folder of this run attempt's own under ``outputs/`` (never shared with another attempt, so
    no other worker's sweep or retry touches it while it lives); removed on exit unless published.
    ``version``: the job's recorded output version (names an older store's ``out/`` when it is adopted;
    an unrecorded newer publish not starting with ``keep`` is rolled back to it, see ``reconcile``)."""
    job_dir.mkdir(parents=True, exist_ok=True)
    adopt_legacy(job_dir, version)
    (job_dir / OUTPUTS).mkdir(exist_ok=True)
    reconcile(job_dir, version, keep)
    sweep(job_dir)
    with staging_dir(job_dir / OUTPUTS) as folder:
        yield folder


def archive(job_dir: Path, previous: int) -> None:
    """Keep version ``previous`` as ``versions/v<previous>``: a link to its folder, made once, and only
    while ``out`` still holds that version (after a crash between the swap and the finish, ``out`` holds
    the new one, and the archive made before that swap already exists)."""
    link = job_dir / VERSIONS / f"v{previous}"
    if link.exists() or link.is_symlink():
        return
    held = current(job_dir)
    if held is None or folder_version(held) != previous:
        logger.warning("job %s: out/ does not hold version %d; not archived", job_dir.name, previous)
        return
    link.parent.mkdir(exist_ok=True)
    swap_symlink(link, os.path.relpath(held, link.parent))


def publish(job_dir: Path, folder: Path, version: int, *, previous: int | None = None, tag: str | None = None) -> Path:
    """Make ``folder`` (an attempt's, complete) version ``version`` (``tag``: the re-dub plan's id, kept in
    the name) and point ``out`` at it in one rename; with ``previous``, archive that version first. Returns
    the published folder. Idempotent: publishing the folder ``out`` already holds changes nothing."""
    if previous is not None:
        archive(job_dir, previous)
    if folder_version(folder) != version:
        (folder / LOCK_NAME).unlink(missing_ok=True)  # the attempt's lock file is no output (its flock stays held)
        named = job_dir / OUTPUTS / (prefix(version, tag) + folder.name.rsplit("-", 1)[-1].lstrip("."))
        os.rename(folder, named)
        folder = named
    swap_symlink(job_dir / OUT, f"{OUTPUTS}/{folder.name}")
    return folder

"""Private installs from Debian packages: pinned .debs fetched through a private apt setup, then unpacked.

Used by RHVoice (pipelines/rhvoice.py) and mbrola (pipelines/mbrola.py), whose packages live in Debian's
``contrib``/``non-free``. The system's apt sources are never touched: ``apt-get download`` runs with its own
sources list, lists and cache folders under ``apt_dir``, each .deb is checked against a pinned SHA-256
(a mismatching one is deleted), and ``extract`` unpacks only the members asked for.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from pipelines.errors import BackendUnavailable, ModelError
from pipelines.fileio import sha256_file

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"


def _apt_options(apt_dir: Path) -> list[str]:
    return [
        "-o", f"Dir::Etc::sourcelist={apt_dir / 'sources.list'}", "-o", "Dir::Etc::sourceparts=-",
        "-o", f"Dir::State::Lists={apt_dir / 'lists'}", "-o", f"Dir::Cache={apt_dir / 'cache'}",
        "-o", "APT::Sandbox::User=root", "-o", "Debug::NoLocking=1", "-q",
    ]  # fmt: skip


def run(cmd: list[str], cwd: Path | None = None) -> None:
    """Run ``cmd``; ModelError with its last stderr line when it fails."""
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [str(proc.returncode)]
        raise ModelError(f"{cmd[0]} failed: {tail[0]}", detail=proc.stderr)


def download(pins: Mapping[str, tuple[str, str]], packages: Iterable[str], apt_dir: Path, what: str) -> dict[str, Path]:
    """The .debs of ``packages`` at their pinned ``(version, sha256)``, fetched into ``apt_dir/debs`` and
    checksummed (a .deb already there with the right checksum is not fetched again). ``what`` names the
    install in the error when apt-get or dpkg-deb is missing."""
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        raise BackendUnavailable(f"installing {what} needs apt-get and dpkg-deb (a Debian or Ubuntu system)")
    for sub in ("lists/partial", "cache/archives/partial", "debs"):
        (apt_dir / sub).mkdir(parents=True, exist_ok=True)
    (apt_dir / "sources.list").write_text(f"deb {MIRROR} {SUITE} main contrib non-free\n")
    wanted = list(packages)
    paths = {p: apt_dir / "debs" / f"{p}_{pins[p][0]}.deb" for p in wanted}
    missing = [p for p in wanted if not (paths[p].is_file() and sha256_file(paths[p]) == pins[p][1])]
    if missing:
        run(["apt-get", *_apt_options(apt_dir), "update"])
        run(
            ["apt-get", *_apt_options(apt_dir), "download", *(f"{p}={pins[p][0]}" for p in missing)],
            cwd=apt_dir / "debs",
        )
        for p in missing:
            found = sorted((apt_dir / "debs").glob(f"{p}_*.deb"))
            if not found:
                raise ModelError(f"apt-get download gave no .deb for {p}")
            found[-1].rename(paths[p])
            sha = sha256_file(paths[p])
            if sha != pins[p][1]:
                paths[p].unlink()
                raise ModelError(f"checksum mismatch for {p}: got {sha}, expected {pins[p][1]}")
    return paths


def extract(deb: Path, dest: Path, members: tuple[str, ...]) -> None:
    """Unpack the files of ``deb`` under the ``members`` prefixes into ``dest`` (paths kept)."""
    dest.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
        for info in tar:
            name = info.name.removeprefix("./")
            if any(name.startswith(m) for m in members) and (info.isfile() or info.issym()):
                tar.extract(info, dest, filter="data")
    if proc.wait() != 0:
        raise ModelError(f"dpkg-deb could not read {deb.name}")

"""mbrola diphone voices spoken through espeak-ng (``espeak-ng -v mb-de2``), installed privately. Opt-in only.

Debian ships the ``mbrola`` program in ``contrib`` and its voices (``mbrola-de2``, ``mbrola-fr4``, ...) in
``non-free``. Their licence allows use with the mbrola program but forbids selling them or putting them in a
product that is sold, so they are never installed or chosen by default: ``videotranslator voices pull
--opt-in mbrola:de2`` installs one on purpose.

The install (pipelines/debs.py: private apt setup, pinned SHA-256) unpacks ``usr/bin/mbrola`` into
``<models>/mbrola/bin`` and each voice database (with its licence, which must travel with it) into
``<models>/mbrola/voices``. espeak-ng looks for an mbrola voice first in ``<its data dir>/mbrola/<name>`` and
runs the ``mbrola`` program found on PATH, so each synthesis runs espeak-ng with ``--path`` pointing at a
private ``espeak-ng-data`` (links to every entry of the system's, plus ``mbrola`` -> our voices) and our
``bin`` first on PATH. Nothing outside the models folder is written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines import debs
from pipelines.errors import BackendUnavailable, ModelError
from pipelines.fileio import atomic_write_text

if TYPE_CHECKING:
    from pipelines.tts import EspeakSynthesizer

PROGRAM = "mbrola"
# package name -> (version, .deb sha256), observed on deb.debian.org for bookworm.
DEBS: dict[str, tuple[str, str]] = {
    "mbrola": ("3.3+dfsg-9", "d94ea5bbb8b201935e8a40d758f1a224030d13a1ba669cc75293823933554c7f"),
    "mbrola-de2": ("0.0.19990106+repack2-4", "d229fd4d1d9cac89a838c0b1761c615bd3bc8d46a7d9709a69e68f35f3ede0fe"),
    "mbrola-de1": ("2.050+repack2-4", "f56dea7c863d6e085b075babc1b899e30247c1aba51d03c71cb01fa2a48f3425"),
    "mbrola-fr4": ("0.0.19990521+repack2-5", "3c19935aa7a6c897c7c033a0c964344b64ff3076b431d2544706a3d4574e1a0f"),
    "mbrola-fr1": ("2.050+repack2-4", "3b3fc10f27c2b202b188492f17d1929a2a3dc9ddecbcb08120610bc68e352202"),
    "mbrola-es1": ("0.0.19980610+repack2-5", "0d9b01da9ab349999ca70b26a49ae9a27737f3622eed738eef15d527eb28256b"),
    "mbrola-es2": ("2.069+repack2-4", "e07f45d2aaef05ec08e4cb176ee24133223567704bf6f9762ea797f598099ee6"),
    "mbrola-it3": ("0.1+repack2-5", "e8eea0391a78f98a5f37e1e1fa9a68547ec85b4ecd701e34090f76017fba2789"),
    "mbrola-it4": ("0.1+repack2-5", "4b58fa2670159ba8133ad7059e0a332dae6c8de88d9666b6395a9c27068096cb"),
    "mbrola-br3": ("2.021+repack2-5", "ef273cfbcb7bc4eed870c31d9bcd636e70625538c225dd6e33364ac848132763"),
    "mbrola-br4": ("1.0+repack2-4", "06ebe8b0edcd90590f2aeaae95cb1237a93ce02c19e5ed105599dfe38dd92045"),
}  # fmt: skip


def root(models_dir: Path) -> Path:
    return Path(models_dir) / "mbrola"


def _stamp(models_dir: Path, name: str) -> Path:
    return root(models_dir) / ".stamps" / f"{name}.json"


def is_installed(models_dir: Path, name: str) -> bool:
    """Whether the mbrola program and the voice ``name`` (e.g. ``de2``) were unpacked and stamped."""
    return _stamp(models_dir, PROGRAM).is_file() and _stamp(models_dir, name).is_file()


def download(packages: Iterable[str], models_dir: Path) -> dict[str, Path]:
    """The .debs of ``packages`` (pinned versions), fetched through a private apt setup and checksummed."""
    return debs.download(DEBS, packages, root(models_dir) / ".apt", "mbrola")


def install(models_dir: Path, names: Iterable[str]) -> list[str]:
    """Install the mbrola program and the voices ``names`` (``de2``, ...). Idempotent; returns the names."""
    names = list(names)
    unknown = [n for n in names if f"mbrola-{n}" not in DEBS]
    if unknown:
        raise ModelError(f"no pinned mbrola voice {unknown[0]!r} (known: {', '.join(sorted(DEBS))})")
    todo = [n for n in names if not is_installed(models_dir, n)]
    if not todo:
        return names
    program_needed = not _stamp(models_dir, PROGRAM).is_file()
    packages = ([PROGRAM] if program_needed else []) + [f"mbrola-{n}" for n in todo]
    fetched = download(packages, models_dir)
    tree = root(models_dir)
    staging = tree / ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    if program_needed:
        debs.extract(fetched[PROGRAM], staging, ("usr/bin/mbrola", "usr/share/doc/mbrola/copyright"))
        (tree / "bin").mkdir(parents=True, exist_ok=True)
        shutil.copy2(staging / "usr/bin/mbrola", tree / "bin" / "mbrola")
        shutil.copy2(staging / "usr/share/doc/mbrola/copyright", tree / "bin" / "mbrola.copyright")
    (tree / "voices").mkdir(parents=True, exist_ok=True)
    for n in todo:
        debs.extract(fetched[f"mbrola-{n}"], staging, (f"usr/share/mbrola/{n}/", f"usr/share/doc/mbrola-{n}/copyright"))
        shutil.copy2(staging / "usr/share/mbrola" / n / n, tree / "voices" / n)
        shutil.copy2(staging / f"usr/share/doc/mbrola-{n}/copyright", tree / "voices" / f"{n}.copyright")
    shutil.rmtree(staging, ignore_errors=True)
    for name, package in ([(PROGRAM, PROGRAM)] if program_needed else []) + [(n, f"mbrola-{n}") for n in todo]:
        stamp = _stamp(models_dir, name)
        stamp.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(stamp, json.dumps({package: {"version": DEBS[package][0], "sha256": DEBS[package][1]}}))
    for deb in fetched.values():
        deb.unlink(missing_ok=True)  # the stamp keeps the checksums
    return names


@lru_cache(maxsize=1)
def system_espeak_data() -> Path:
    """The system espeak-ng's data folder (``espeak-ng --version`` says where)."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise BackendUnavailable("espeak-ng is not installed; `apt-get install espeak-ng`")
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False).stdout
    found = re.search(r"Data at:\s*(\S+)", out)
    if not found or not Path(found.group(1)).is_dir():
        raise BackendUnavailable(f"cannot find espeak-ng's data folder in {out.strip()!r}")
    return Path(found.group(1))


def espeak_home(models_dir: Path) -> Path:
    """A folder whose ``espeak-ng-data`` is the system's plus our mbrola voices (for ``espeak-ng --path``).
    Built of symbolic links; rebuilt when the system's data folder moved."""
    system = system_espeak_data()
    home = root(models_dir) / "espeak"
    data = home / "espeak-ng-data"
    probe = data / "phontab"
    if probe.is_symlink() and Path(os.readlink(probe)) == system / "phontab" and (data / "mbrola").is_symlink():
        return home
    fresh = root(models_dir) / f".espeak-{os.getpid()}"
    shutil.rmtree(fresh, ignore_errors=True)
    (fresh / "espeak-ng-data").mkdir(parents=True)
    for entry in system.iterdir():
        if entry.name != "mbrola":
            (fresh / "espeak-ng-data" / entry.name).symlink_to(entry)
    (fresh / "espeak-ng-data" / "mbrola").symlink_to(root(models_dir) / "voices")
    shutil.rmtree(home, ignore_errors=True)
    try:
        os.replace(fresh, home)
    except OSError:  # another process built it meanwhile
        shutil.rmtree(fresh, ignore_errors=True)
    return home


def synthesizer(name: str, models_dir: Path, rate_wpm: int = 175) -> EspeakSynthesizer:
    """An espeak-ng synthesizer speaking through the installed mbrola voice ``name`` (``de2``)."""
    from pipelines.tts import EspeakSynthesizer

    if not is_installed(models_dir, name):
        raise ModelError(
            f"mbrola voice {name!r} is not installed; run `videotranslator voices pull --opt-in mbrola:{name}`"
        )
    synth = EspeakSynthesizer(
        f"mb-{name}", rate_wpm, data_home=espeak_home(models_dir), bin_dir=root(models_dir) / "bin"
    )
    synth.name = f"mbrola:{name}"
    return synth

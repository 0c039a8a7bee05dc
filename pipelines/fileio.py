"""Files that appear whole or not at all, with the permissions any other tool would give them.

The one home of atomic writes and file digests (every stage, the job storage and the model installer use
these). A temp file is made beside the target (same filesystem, so the final rename is atomic), filled,
flushed to disk, given the mode the process umask allows (``mkstemp`` makes 0600 files, which a user who
serves ``out/`` with a web server cannot read), then renamed over the target. On any error the temp file is
removed and the target is left as it was.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_CHUNK_BYTES = 1 << 20


def umask() -> int:
    """The process umask, read without changing it where /proc allows (``os.umask`` is a race between threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def file_mode() -> int:
    """The mode ``open(path, "w")`` would give a new file: 0o666 less the umask (0o644 under umask 022)."""
    return 0o666 & ~umask()


def dir_mode() -> int:
    """The mode ``mkdir`` would give a new folder: 0o777 less the umask (0o755 under umask 022)."""
    return 0o777 & ~umask()


@contextmanager
def atomic_path(target: str | Path, *, suffix: str = "") -> Iterator[Path]:
    """Yield a temp path beside ``target``; when the block succeeds it becomes ``target``, atomically.

    The temp file exists (empty) when the block starts, so a writer may open it or hand its name to a tool
    (ffmpeg) that overwrites it. ``suffix`` keeps an extension tools look at (``.mp4``, ``.wav``). The final
    file gets :func:`file_mode` and is fsynced. On an exception the temp file is removed and it propagates.
    """
    dst = Path(target)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=suffix or ".tmp", dir=dst.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path. OS errors propagate."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` (newlines as given, never translated) to ``path`` atomically; returns the path."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_copy(src: str | Path, dst: str | Path) -> Path:
    """Copy ``src`` to ``dst`` atomically (content only: the copy gets :func:`file_mode`); returns ``dst``."""
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    return Path(dst)


def publish(src: str | Path, dst: str | Path) -> Path:
    """Rename a finished file into place, giving it :func:`file_mode` (for files a tool made privately)."""
    os.chmod(src, file_mode())
    os.replace(src, dst)
    return Path(dst)


def swap_symlink(link: str | Path, target: str | Path) -> Path:
    """Point the symlink ``link`` at ``target`` in one step: a new link made beside it is renamed over it
    (rename(2) replaces a symlink atomically: a reader resolves the old target or the new one, never
    nothing). ``target`` is stored as given (relative: resolved from ``link``'s folder). Returns ``link``."""
    dst = Path(link)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.{threading.get_ident()}.link")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    try:
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return dst


def sha256_file(path: str | Path) -> str:
    """The sha256 of a file's content, as hex. OS errors propagate."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


STAGING_PREFIX = ".vt-staging-"
LOCK_NAME = ".lock"
_UNLOCKED_GRACE_S = 60.0


def is_live(staging: Path) -> bool:
    """True while the run that made ``staging`` holds its lock (a crashed or killed run's lock is free)."""
    import fcntl

    lock = staging / LOCK_NAME
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        # A folder from before locks, or one whose run died while creating it; a brand-new one may be a live
        # run between mkdtemp and taking its lock, so only an old one counts as stale.
        try:
            return time.time() - staging.stat().st_mtime < _UNLOCKED_GRACE_S
        except OSError:
            return False
    except OSError:
        return True  # cannot tell: leave it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases a lock we may have taken
    return False


def sweep_staging(out_dir: str | Path) -> list[Path]:
    """Remove the staging folders of runs that are no longer alive in ``out_dir``; returns what was removed."""
    removed = []
    for path in Path(out_dir).glob(f"{STAGING_PREFIX}*"):
        if path.is_dir() and not is_live(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


@contextmanager
def staging_dir(out_dir: str | Path) -> Iterator[Path]:
    """A private folder inside ``out_dir`` for one run's outputs until they are complete.

    Stale folders that crashed or killed runs left behind are swept first; a live run's folder is kept (it
    holds an ``flock`` on its ``.lock`` file for as long as the run lasts). The folder is removed on exit.
    """
    import fcntl

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sweep_staging(out)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out))
    fd = os.open(staging / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        os.close(fd)

"""Atomic writes with umask permissions, and the staging folders of runs that crashed or are still alive."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines import fileio


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_writes_follow_the_umask(tmp_path: Path, umask_022: None) -> None:
    """mkstemp makes 0600 files; what we publish is readable like any file a tool writes (0644 under 022)."""
    assert fileio.file_mode() == 0o644
    assert mode(fileio.atomic_write_text(tmp_path / "a.srt", "1\n")) == 0o644
    assert mode(fileio.atomic_copy(tmp_path / "a.srt", tmp_path / "b.srt")) == 0o644
    with fileio.atomic_path(tmp_path / "c.mp4", suffix=".mp4") as tmp:
        assert tmp.suffix == ".mp4" and mode(tmp) == 0o600  # private while being written
        tmp.write_bytes(b"x")
    assert mode(tmp_path / "c.mp4") == 0o644
    os.umask(0o077)
    assert mode(fileio.atomic_write_bytes(tmp_path / "d.bin", b"x")) == 0o600  # a stricter umask is honoured


def test_a_failed_write_leaves_the_target_and_no_temp_file(tmp_path: Path) -> None:
    target = fileio.atomic_write_text(tmp_path / "report.json", "old")
    with pytest.raises(RuntimeError), fileio.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("ffmpeg died")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_publish_gives_a_private_file_the_umask_mode(tmp_path: Path, umask_022: None) -> None:
    src = tmp_path / "private"
    src.write_bytes(b"x")
    src.chmod(0o600)
    assert mode(fileio.publish(src, tmp_path / "out.mp4")) == 0o644
    assert not src.exists()


def test_sha256_file(tmp_path: Path) -> None:
    path = fileio.atomic_write_bytes(tmp_path / "f", b"abc")
    assert fileio.sha256_file(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def _old(path: Path) -> Path:
    past = time.time() - 3600
    os.utime(path, (past, past))
    return path


def test_staging_dir_sweeps_dead_runs_and_keeps_a_live_one(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    crashed = out / ".vt-staging-crashed"  # a killed run: its lock file is there, nobody holds it
    crashed.mkdir()
    (crashed / ".lock").touch()
    (crashed / "jfk.ru.mp4").write_bytes(b"half")
    legacy = out / ".vt-staging-legacy"  # from before locks, an hour old
    legacy.mkdir()
    _old(legacy)
    young = out / ".vt-staging-young"  # no lock yet, just made: may be a run between mkdtemp and its lock
    young.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from pipelines.fileio import staging_dir
            with staging_dir({str(out)!r}) as d:
                print(d, flush=True)
                time.sleep(60)
        """)],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        live = Path(holder.stdout.readline().strip())
        assert live.is_dir() and live.name.startswith(fileio.STAGING_PREFIX)
        assert not crashed.exists() and not legacy.exists()  # the live run's own start swept them
        assert young.exists()
        with fileio.staging_dir(out) as mine:
            assert mine.is_dir() and live.is_dir()  # another live run's folder is kept
            (mine / "x").write_text("x")
        assert not mine.exists()  # a run's own folder goes when it ends
    finally:
        holder.kill()
        holder.wait()
    assert live.exists()  # SIGKILL: the folder stays behind ...
    assert fileio.sweep_staging(out) == [live]  # ... and the next run removes it: its lock died with it
    assert sorted(p.name for p in out.iterdir()) == [young.name]


def test_swap_symlink_replaces_a_link_in_one_step_and_leaves_no_temp_link(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "f").write_text(name)
    link = tmp_path / "out"
    fileio.swap_symlink(link, "a")
    assert (link / "f").read_text() == "a"
    fileio.swap_symlink(link, "b")
    assert os.readlink(link) == "b" and (link / "f").read_text() == "b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "out"]

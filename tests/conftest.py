"""Shared fixtures: paths to the committed samples and generated test media."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``guard`` tests run before everything else, so a crashing real component stops the run at once."""
    items.sort(key=lambda item: item.get_closest_marker("guard") is None)


@pytest.fixture(scope="session", autouse=True)
def _hermetic_state(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Stage cache and logs in a fresh folder per test session: no result leaks in from earlier runs.

    Subprocesses (the CLI, Ray workers) inherit these variables.
    """
    root = tmp_path_factory.mktemp("state")
    os.environ["VT_STORAGE__CACHE_DIR"] = str(root / "cache")
    os.environ["VT_LOG_DIR"] = str(root / "log")


def wait_healthy(url: str, proc: subprocess.Popen[bytes], what: str, timeout_s: float = 120.0) -> None:
    """Poll ``url``/healthz until it answers 200; fail at once if ``proc`` exits, or after ``timeout_s``."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        assert proc.poll() is None, f"{what} exited during start-up"
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{what} did not start"
        time.sleep(0.2)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def jfk_flac() -> Path:
    return DATA / "jfk.flac"


@pytest.fixture(scope="session")
def test_mp3() -> Path:
    return DATA / "this_is_a_test.mp3"


def make_video(out: Path, audio: Path | None, duration_s: float, *, size: str = "320x240") -> Path:
    """A test video: lavfi colour (and a tone-free real speech track when ``audio`` is given)."""
    args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", f"color=c=navy:s={size}:r=25:d={duration_s}"]
    if audio is not None:
        args += ["-i", str(audio), "-af", "apad", "-map", "0:v", "-map", "1:a", "-c:a", "aac", "-b:a", "96k"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-t", str(duration_s), str(out)]
    subprocess.run(args, check=True)
    return out


@pytest.fixture(scope="session")
def jfk_video(tmp_path_factory: pytest.TempPathFactory, jfk_flac: Path) -> Path:
    """A 13 s test video: navy colour plus jfk.flac (11 s of speech) and trailing silence."""
    return make_video(tmp_path_factory.mktemp("media") / "jfk.mp4", jfk_flac, 13.0)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """ONE local Ray cluster for the whole test session (2 CPUs, no dashboard, auth disabled). A Ray that is
    already up in this process (another session fixture started it) is reused and left to its owner."""
    os.environ["RAY_AUTH_MODE"] = "disabled"
    import ray
    from ray import serve

    if ray.is_initialized():
        yield
        return
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture(scope="session")
def url_video(tmp_path_factory: pytest.TempPathFactory, jfk_flac: Path) -> Path:
    """A 3 s mp4 (navy colour plus the start of jfk.flac) with its index first, as web servers serve them."""
    out = tmp_path_factory.mktemp("url") / "talk.mp4"
    make_video(out.with_name("raw.mp4"), jfk_flac, 3.0, size="64x48")
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(out.with_name("raw.mp4")), "-c", "copy",
                    "-movflags", "+faststart", str(out)], check=True)  # fmt: skip
    return out


@pytest.fixture(scope="session")
def long_mov(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 s of PCM noise (~5.8 MB, no encoding cost), its index first: a partial download already tells its length."""
    out = tmp_path_factory.mktemp("url") / "long.mov"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "anoisesrc=d=30:r=48000", "-ac", "2",
                    "-c:a", "pcm_s16le", "-movflags", "+faststart", str(out)], check=True)  # fmt: skip
    return out


@pytest.fixture(scope="session")
def media_server(url_video: Path, long_mov: Path) -> Iterator[object]:
    """A local HTTP server (127.0.0.1, a free port) serving ``/talk.mp4``, ``/long.mov`` and the bad paths of
    tests/http_media.py."""
    from tests.http_media import serve_media

    with serve_media({"/talk.mp4": url_video, "/long.mov": long_mov}) as server:
        yield server

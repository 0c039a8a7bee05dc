"""The fetch stage: a URL input becomes a local media file, through yt-dlp in a guarded child process.

``Fetcher(url)`` checks the URL (``pipelines.urlguard``: http(s) only, public addresses unless
``fetch.allow_hosts`` names them), then runs ``python -m pipelines.fetch_child`` with a scrubbed environment
and watches it: the bytes on disk against ``MAX_FILE_SIZE``, the partial file's duration (ffprobe) against
``MAX_DURATION``, the whole time against ``fetch.timeout_s``, the rate against ``fetch.min_rate_bytes_s`` and
the job's cancel flag. Passing any of them kills the child; its temporary folder goes with it, so a refusal
leaves nothing on disk. A finished download is probed as media and kept in the stage cache by content
(``<cache>/fetch/media/<sha256>.<ext>``: the same file uploaded or fetched from another URL shares the stage
cache), with an index by URL (``<cache>/fetch/urls/``) that spares a second download within ``fetch.cache_ttl_s``.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from pipelines import media
from pipelines.cache import key as cache_key
from pipelines.errors import (
    DownloadTooLarge,
    FetchFailed,
    FetchTimeout,
    JobCancelled,
    MediaTooLong,
    URLRefused,
    VTError,
)
from pipelines.fileio import atomic_write_text, publish, sha256_file
from pipelines.schema import JobRequest, safe_stem
from pipelines.urlguard import check_url

if TYPE_CHECKING:
    from configs.settings import FetchSettings

logger = logging.getLogger(__name__)

BytesFn = Callable[[int, int | None], None]  # (bytes so far, total bytes or None when unknown)
PROBE_EVERY_BYTES = 1 << 20  # try the partial file's duration once per MiB until it is known
_ERRORS: dict[str, type[VTError]] = {
    "url_refused": URLRefused,
    "download_too_large": DownloadTooLarge,
    "media_too_long": MediaTooLong,
    "fetch_failed": FetchFailed,
}
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)


@dataclass(frozen=True)
class Fetched:
    """A fetched URL: the local ``path`` (in the stage cache), a file-name ``stem`` for the outputs, its size
    in bytes, its SHA-256, and whether it came from the cache (no download)."""

    url: str
    path: Path
    stem: str
    size_bytes: int
    sha256: str
    cached: bool


def url_stem(url: str, title: str = "") -> str:
    """A file-system-safe output stem: the URL path's file name (``talk.mp4``), else the page's title (a site's
    ``/watch?v=...``), else ``download``."""
    name = unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])
    if "." in name.strip("."):
        return safe_stem(name) or "download"
    return safe_stem(title.replace(".", " ")) or safe_stem(name) or "download"


def child_env(home: Path) -> dict[str, str]:
    """The child's whole environment: no proxy, credential, cookie or config variable of this process."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home),
        "XDG_CACHE_HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONPATH": _PACKAGE_ROOT,
        "PYTHONDONTWRITEBYTECODE": "1",
    }


class Fetcher:
    """Fetches URL inputs; see the module docstring. Raises URLRefused, DownloadTooLarge, MediaTooLong,
    FetchTimeout, FetchFailed, InvalidMedia or JobCancelled, and then leaves no file behind."""

    def __init__(
        self,
        settings: FetchSettings,
        cache_dir: Path,
        *,
        max_bytes: int,
        max_duration_s: float,
        python: str = sys.executable,
        poll_s: float = 0.1,
    ) -> None:
        self.settings = settings
        self.root = Path(cache_dir) / "fetch"
        self.max_bytes, self.max_duration_s = max_bytes, max_duration_s
        self.python, self.poll_s = python, poll_s

    def check(self, url: str) -> None:
        """The up-front refusal (scheme, DNS), for intakes that answer before the job runs."""
        check_url(url, self.settings.allow_hosts)

    def __call__(
        self, url: str, *, on_bytes: BytesFn | None = None, should_cancel: Callable[[], bool] | None = None
    ) -> Fetched:
        self.check(url)
        hit = self._cached(url)
        if hit is not None:
            return hit
        tmp = self.root / "tmp" / uuid.uuid4().hex
        tmp.mkdir(parents=True)
        try:
            event = _Watch(self, tmp, on_bytes or (lambda done, total: None), should_cancel or (lambda: False)).run(url)
            path = Path(event["path"])
            if path.stat().st_size > self.max_bytes:  # finished between two looks
                raise DownloadTooLarge(f"the download passed MAX_FILE_SIZE ({self.max_bytes} bytes)")
            media.probe(path, max_duration_s=self.max_duration_s)  # InvalidMedia: a page, not media
            return self._keep(url, path, url_stem(url, str(event.get("title") or "")))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    # ------------------------------------------------------------------ the cache (by URL, then by content)

    def _index(self, url: str) -> Path:
        return self.root / "urls" / f"{cache_key('url', url)}.json"

    def _cached(self, url: str) -> Fetched | None:
        index = self._index(url)
        try:
            entry = json.loads(index.read_text(encoding="utf-8"))
            path = self.root / "media" / entry["file"]
            fresh = time.time() - index.stat().st_mtime < self.settings.cache_ttl_s
            if fresh and path.is_file() and path.stat().st_size == entry["size_bytes"]:
                os.utime(path)  # in use: the retention sweep goes by age
                logger.info("fetch: %s from the cache (%s)", url, entry["sha256"][:12])
                return Fetched(url, path, entry["stem"], entry["size_bytes"], entry["sha256"], True)
        except (OSError, ValueError, KeyError):
            pass
        return None

    def _keep(self, url: str, path: Path, stem: str) -> Fetched:
        digest = sha256_file(path)
        final = self.root / "media" / f"{digest}{path.suffix.lower()}"
        final.parent.mkdir(parents=True, exist_ok=True)
        if not final.is_file():
            publish(path, final)
        size = final.stat().st_size
        entry = {"url": url, "file": final.name, "sha256": digest, "size_bytes": size, "stem": stem}
        self._index(url).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self._index(url), json.dumps(entry))
        logger.info("fetch: %s -> %s (%d bytes)", url, final.name, size)
        return Fetched(url, final, stem, size, digest, False)


class _Watch:
    """One child process and the limits it runs under."""

    def __init__(self, fetcher: Fetcher, tmp: Path, on_bytes: BytesFn, should_cancel: Callable[[], bool]) -> None:
        self.f, self.tmp = fetcher, tmp
        self.on_bytes, self.should_cancel = on_bytes, should_cancel
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.total: int | None = None
        self.duration_known = False
        self.probed_at = 0
        self.samples: deque[tuple[float, int]] = deque()

    def run(self, url: str) -> dict[str, Any]:
        s = self.f.settings
        job = {
            "url": url, "out_dir": str(self.tmp), "allow_hosts": list(s.allow_hosts), "max_bytes": self.f.max_bytes,
            "max_duration_s": self.f.max_duration_s, "socket_timeout_s": s.socket_timeout_s,
        }  # fmt: skip
        with open(self.tmp / ".stderr", "wb") as stderr:
            proc = subprocess.Popen(
                [self.f.python, "-m", "pipelines.fetch_child"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=stderr, cwd=self.tmp, env=child_env(self.tmp), start_new_session=True,
            )  # fmt: skip
            assert proc.stdin is not None and proc.stdout is not None
            reader = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
            reader.start()
            proc.stdin.write(json.dumps(job).encode())
            proc.stdin.close()
            try:
                self._watch(proc)
            except BaseException:
                _kill(proc)
                raise
            finally:
                reader.join(5)
        return self._outcome(proc)

    def _read(self, stream: IO[bytes]) -> None:
        for line in stream:
            try:
                self.events.put(json.loads(line))
            except ValueError:
                continue

    def _watch(self, proc: subprocess.Popen[bytes]) -> None:
        s, started = self.f.settings, time.monotonic()
        while proc.poll() is None:
            time.sleep(self.f.poll_s)
            if self.should_cancel():
                raise JobCancelled("the job was cancelled")
            now, done = time.monotonic(), self._bytes_on_disk()
            self._drain()
            if done > self.f.max_bytes:
                raise DownloadTooLarge(f"the download passed MAX_FILE_SIZE ({self.f.max_bytes} bytes) and was stopped")
            if now - started > s.timeout_s:
                raise FetchTimeout(f"the download did not finish within {s.timeout_s:.0f} s")
            self._check_rate(now - started, now, done)
            self._check_duration(done)
            self.on_bytes(done, self.total)

    def _drain(self) -> None:
        while not self.events.empty():
            event = self.events.get_nowait()
            if event.get("event") == "progress" and event.get("total"):
                self.total = int(event["total"])
            elif event.get("event") in ("done", "error"):
                self.events.put(event)  # the outcome reads it once the child exits
                return

    def _check_rate(self, elapsed: float, now: float, done: int) -> None:
        s = self.f.settings
        self.samples.append((now, done))
        while len(self.samples) > 1 and self.samples[1][0] <= now - s.rate_window_s:
            self.samples.popleft()
        if s.min_rate_bytes_s and elapsed >= s.rate_window_s:
            since, then = self.samples[0]
            if now - since >= s.rate_window_s * 0.9 and (done - then) < s.min_rate_bytes_s * (now - since):
                raise FetchTimeout(
                    f"the download came slower than {s.min_rate_bytes_s} bytes/s for {s.rate_window_s:.0f} s"
                )

    def _check_duration(self, done: int) -> None:
        if self.duration_known or done - self.probed_at < PROBE_EVERY_BYTES:
            return
        self.probed_at = done
        part = max(self._files(), key=lambda p: p.stat().st_size, default=None)
        duration = media.partial_duration(part) if part is not None else None
        if duration is not None:
            self.duration_known = True
            media.check_duration("the download", duration, self.f.max_duration_s)  # MediaTooLong

    def _files(self) -> list[Path]:
        return [p for p in self.tmp.rglob("*") if p.is_file() and p.name != ".stderr"]

    def _bytes_on_disk(self) -> int:
        total = 0
        for p in self._files():
            try:
                total += p.stat().st_size
            except OSError:  # renamed meanwhile (.part -> final)
                continue
        return total

    def _outcome(self, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
        last: dict[str, Any] | None = None
        while not self.events.empty():
            event = self.events.get_nowait()
            if event.get("event") in ("done", "error"):
                last = event
        if last is None:
            tail = (self.tmp / ".stderr").read_text("utf-8", "replace").strip().splitlines()[-1:]
            raise FetchFailed(f"the download failed (exit code {proc.returncode})", detail="\n".join(tail) or None)
        if last["event"] == "error":
            raise _ERRORS.get(str(last.get("code")), FetchFailed)(str(last.get("message") or "the download failed"))
        return last


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill the child and anything it started (its own session), then reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def fetch_input(
    fetcher: Fetcher,
    request: JobRequest,
    progress: Callable[[str, float, str | None], None] | None,
    should_cancel: Callable[[], bool] | None,
) -> tuple[JobRequest, dict[str, Any] | None]:
    """The runner's fetch stage: a URL ``request.input`` becomes the fetched file (and names the outputs unless
    ``output_stem`` does); other inputs pass through. Reports ``("fetch", fraction, None)`` progress, and the
    bytes to ``progress.on_bytes(done, total)`` when the callback has it. Returns the request and the report's
    ``fetch`` entry (None without a URL). Raises what ``Fetcher`` raises."""
    from pipelines.urlguard import is_url

    if not is_url(request.input):
        return request, None
    report = progress or (lambda stage, fraction, language: None)
    if should_cancel is not None and should_cancel():
        raise JobCancelled("the job was cancelled")
    on_bytes_hook = getattr(progress, "on_bytes", None)

    def on_bytes(done: int, total: int | None) -> None:
        report("fetch", min(done / total, 0.99) if total else 0.0, None)
        if on_bytes_hook is not None:
            on_bytes_hook(done, total)

    started = time.perf_counter()
    fetcher.check(request.input)  # a refused URL fails before any progress is shown
    report("fetch", 0.0, None)
    got = fetcher(request.input, on_bytes=on_bytes, should_cancel=should_cancel)
    report("fetch", 1.0, None)
    entry = {"url": got.url, "bytes": got.size_bytes, "sha256": got.sha256, "cached": got.cached,
             "seconds": round(time.perf_counter() - started, 4)}  # fmt: skip
    return request.model_copy(update={"input": str(got.path), "output_stem": request.output_stem or got.stem}), entry

"""The fetch child: ``python -m pipelines.fetch_child`` downloads ONE URL with yt-dlp and exits.

It reads its job as JSON on stdin (``url``, ``out_dir``, ``allow_hosts``, ``max_bytes``, ``max_duration_s``,
``socket_timeout_s``) and writes JSON lines on stdout: ``{"event": "progress", "bytes", "total"}`` while it
downloads, then one ``{"event": "done", "path", "title"}`` or ``{"event": "error", "code", "message"}``.

It runs in a process of its own (``pipelines.fetch.Fetcher`` starts it with a scrubbed environment: no proxies,
no netrc or cookie files, a HOME of its own) so that the guard below can replace ``socket.getaddrinfo`` for the
whole process: every host yt-dlp connects to, redirects included, is checked by ``pipelines.urlguard`` on the
very addresses it then connects to. The parent enforces the size cap on disk, the deadlines and cancellation,
and kills this process when one is passed.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path
from typing import Any

from pipelines.errors import URLRefused
from pipelines.urlguard import AllowList, check_address

# Single files over plain HTTP(S), or HLS through yt-dlp's own (Python) downloader: never a protocol that an
# external program (ffmpeg, rtmpdump) would fetch, since the guard covers this process only.
FORMAT = "b[protocol=https]/b[protocol=http]/b[protocol=m3u8_native]"


def emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


class Outcome:
    """The first refusal wins: yt-dlp wraps the guard's OSError in its own errors."""

    def __init__(self) -> None:
        self.error: dict[str, str] | None = None

    def refuse(self, code: str, message: str) -> None:
        if self.error is None:
            self.error = {"code": code, "message": message}


def install_guard(allow: AllowList, outcome: Outcome) -> None:
    """Every DNS answer this process uses passes ``check_address`` or the connection fails."""
    real = socket.getaddrinfo

    def guarded(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        infos = real(host, port, *args, **kwargs)
        name = host.decode() if isinstance(host, bytes) else str(host)
        for info in infos:
            try:
                check_address(name, str(info[4][0]), allow)
            except URLRefused as exc:
                outcome.refuse("url_refused", str(exc))
                raise OSError(str(exc)) from None
        return infos

    socket.getaddrinfo = guarded


class _Log:
    """yt-dlp's logger: keep the last error line for the parent, print nothing. Its "File is larger than
    max-filesize" (a declared Content-Length over the cap: nothing downloaded) is a refusal."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self.last_error = ""

    def debug(self, msg: str) -> None:
        if "larger than max-filesize" in msg:
            self.outcome.refuse(
                "download_too_large", "the media is larger than MAX_FILE_SIZE " + msg[msg.find("(") :].strip()
            )

    def info(self, msg: str) -> None:
        self.debug(msg)

    def warning(self, msg: str) -> None:
        pass

    def error(self, msg: str) -> None:
        self.last_error = msg.removeprefix("ERROR: ").split("; please report this issue")[0].strip()


def run(job: dict[str, Any]) -> int:
    outcome = Outcome()
    install_guard(AllowList.parse(job.get("allow_hosts", [])), outcome)
    import yt_dlp  # after the guard: nothing of yt-dlp's may resolve a name before it

    max_bytes, max_duration_s = int(job["max_bytes"]), float(job["max_duration_s"])
    last = [0.0]

    def hook(status: dict[str, Any]) -> None:
        done = int(status.get("downloaded_bytes") or 0)
        if done > max_bytes:
            outcome.refuse("download_too_large", f"the download passed MAX_FILE_SIZE ({max_bytes} bytes)")
            raise yt_dlp.utils.DownloadCancelled("too large")
        now = time.monotonic()
        if now - last[0] >= 0.2 or status.get("status") == "finished":
            last[0] = now
            emit(
                {
                    "event": "progress",
                    "bytes": done,
                    "total": status.get("total_bytes") or status.get("total_bytes_estimate"),
                }
            )

    def match(info: dict[str, Any], *, incomplete: bool = False) -> str | None:
        duration = info.get("duration")
        if duration and float(duration) > max_duration_s:
            outcome.refuse(
                "media_too_long", f"the media lasts {float(duration):.0f} s; at most {max_duration_s:.0f} s is accepted"
            )
            return "too long"
        if info.get("filesize") and int(info["filesize"]) > max_bytes:
            outcome.refuse("download_too_large", f"the media is {info['filesize']} bytes; MAX_FILE_SIZE is {max_bytes}")
            return "too large"
        return None

    log = _Log(outcome)
    opts: dict[str, Any] = {
        "outtmpl": {"default": str(Path(job["out_dir"]) / "media.%(ext)s")},
        "format": FORMAT,
        "noplaylist": True,
        "playlist_items": "1",
        "max_filesize": max_bytes,
        "match_filter": match,
        "socket_timeout": float(job["socket_timeout_s"]),
        "proxy": "",  # never the environment's proxies
        "cookiefile": None,
        "usenetrc": False,
        "cachedir": False,
        "retries": 1,
        "fragment_retries": 1,
        "extractor_retries": 0,
        "hls_prefer_native": True,
        "restrictfilenames": True,
        "updatetime": False,
        "noprogress": True,
        "quiet": True,
        "no_warnings": True,
        "logger": log,
        "progress_hooks": [hook],
    }
    info: dict[str, Any] | None = None
    try:
        with yt_dlp.YoutubeDL(opts) as ydl:
            info = ydl.extract_info(job["url"], download=True)
    except Exception as exc:  # noqa: BLE001  (every failure becomes one error event)
        if outcome.error is None:
            outcome.refuse("fetch_failed", log.last_error or str(exc))
    files = [p for p in Path(job["out_dir"]).glob("media.*") if not p.name.endswith((".part", ".ytdl"))]
    if outcome.error is None and not files:
        outcome.refuse("fetch_failed", log.last_error or "the URL gave no media file")
    if outcome.error is not None:
        emit({"event": "error", **outcome.error})
        return 1
    title = str((info or {}).get("title") or "")
    emit({"event": "done", "path": str(files[0]), "title": title})
    return 0


def main() -> None:
    sys.exit(run(json.loads(sys.stdin.read())))


if __name__ == "__main__":
    main()

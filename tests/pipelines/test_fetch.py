"""The fetch stage against a real local HTTP server (tests/http_media.py): yt-dlp in its guarded child process,
the SSRF refusals, the size cap and the timeouts enforced while downloading, the cache, cancellation."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from configs.settings import FetchSettings
from pipelines.errors import DownloadTooLarge, FetchTimeout, JobCancelled, MediaTooLong, URLRefused
from pipelines.fetch import Fetcher, child_env
from pipelines.fileio import sha256_file
from pipelines.urlguard import check_url, is_url

ALLOW = ["127.0.0.1"]


def fetcher(root: Path, *, max_bytes: int = 50 * 1024**2, max_duration_s: float = 600.0, **settings: Any) -> Fetcher:
    return Fetcher(FetchSettings(**{"allow_hosts": ALLOW, **settings}), root, max_bytes=max_bytes,
                   max_duration_s=max_duration_s)  # fmt: skip


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_a_served_video_is_fetched_and_cached_by_url_and_content(
    tmp_path: Path, media_server: Any, url_video: Path
) -> None:
    seen: list[tuple[int, int | None]] = []
    f = fetcher(tmp_path)
    got = f(media_server.url("/talk.mp4"), on_bytes=lambda done, total: seen.append((done, total)))
    assert got.sha256 == sha256_file(url_video) and got.path.read_bytes() == url_video.read_bytes()
    assert got.stem == "talk" and not got.cached and got.path.name == f"{got.sha256}.mp4"
    assert seen and seen[-1][0] == url_video.stat().st_size  # progress in bytes, against the total
    requests = media_server.sent["/talk.mp4"]
    again = f(media_server.url("/talk.mp4"))
    assert again.cached and again.path == got.path and media_server.sent["/talk.mp4"] == requests  # no download
    other = f(media_server.url("/talk.mp4?copy=1"))  # another URL, the same content: one file
    assert not other.cached and other.path == got.path
    assert not list((tmp_path / "fetch" / "tmp").iterdir())


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://127.0.0.1/talk.mp4", "gopher://127.0.0.1/", "http://169.254.169.254/latest/meta-data",
     "http://localhost:9/talk.mp4", "http://127.0.0.1:9/talk.mp4", "http://[::1]:9/x", "http://10.1.2.3/x",
     "http://224.0.0.1/x", "http://0.0.0.0/x", "http://[::ffff:127.0.0.1]/x"],
)  # fmt: skip
def test_refused_urls_without_the_allow_list(tmp_path: Path, url: str) -> None:
    f = Fetcher(FetchSettings(), tmp_path, max_bytes=1 << 20, max_duration_s=60)
    with pytest.raises(URLRefused):
        f(url)
    assert not files_under(tmp_path)


def test_the_guard_checks_what_the_name_resolves_to() -> None:
    def resolve(host: str, port: int) -> list[str]:
        return {"media.example": ["93.184.215.14"], "rebind.example": ["93.184.215.14", "127.0.0.1"]}[host]

    check_url("https://media.example/v.mp4", resolve=resolve)
    with pytest.raises(URLRefused, match="127.0.0.1"):
        check_url("https://rebind.example/v.mp4", resolve=resolve)
    check_url("http://rebind.example/v.mp4", ["127.0.0.0/8"], resolve=resolve)  # a network in the allow-list
    check_url("http://rebind.example/v.mp4", ["rebind.example"], resolve=resolve)  # or the host's name
    assert is_url("https://x/y") and is_url("file:///x") and not is_url("/tmp/x.mp4") and not is_url("C:\\x.mp4")


def test_a_redirect_from_an_allowed_host_to_a_private_one_is_refused(tmp_path: Path, media_server: Any) -> None:
    for target in ("169.254.169.254/latest/meta-data", f"127.0.0.2:{media_server.port}/talk.mp4"):
        with pytest.raises(URLRefused, match="169.254.169.254|127.0.0.2"):
            fetcher(tmp_path)(media_server.url(f"/redirect/{target}"))
    assert not files_under(tmp_path)


def test_a_body_over_the_size_cap_stops_early(tmp_path: Path, media_server: Any) -> None:
    with pytest.raises(DownloadTooLarge, match="MAX_FILE_SIZE"):
        fetcher(tmp_path, max_bytes=1 << 20)(media_server.url("/endless.mp4"))
    assert media_server.sent["/endless.mp4"] < 64 * 1024**2  # of the 1 GiB the server would send
    assert not files_under(tmp_path)


def test_a_declared_size_over_the_cap_is_refused_before_the_body(
    tmp_path: Path, media_server: Any, url_video: Path
) -> None:
    with pytest.raises(DownloadTooLarge):
        fetcher(tmp_path, max_bytes=url_video.stat().st_size // 2)(media_server.url("/talk.mp4?declared"))
    assert not files_under(tmp_path)


def test_media_longer_than_the_cap_is_refused_while_downloading(tmp_path: Path, media_server: Any, long_mov: Path) -> None:
    with pytest.raises(MediaTooLong, match="lasts 0:00:30"):
        fetcher(tmp_path, max_duration_s=10.0)(media_server.url("/throttled/long.mov"))
    assert media_server.sent["/throttled/long.mov"] < long_mov.stat().st_size / 2  # stopped early
    with pytest.raises(MediaTooLong):  # a short file is checked once it is complete
        fetcher(tmp_path, max_duration_s=1.0)(media_server.url("/talk.mp4?long"))
    assert not files_under(tmp_path)


def test_a_one_byte_a_second_server_times_out(tmp_path: Path, media_server: Any) -> None:
    started = time.monotonic()
    with pytest.raises(FetchTimeout):
        fetcher(tmp_path, timeout_s=3.0)(media_server.url("/slow.mp4"))
    assert time.monotonic() - started < 15
    with pytest.raises(FetchTimeout, match="slower than"):
        fetcher(tmp_path, min_rate_bytes_s=100, rate_window_s=2.0)(media_server.url("/slow.mp4?rate"))
    assert not files_under(tmp_path)


def test_a_cancelled_download_stops_and_leaves_nothing(tmp_path: Path, media_server: Any) -> None:
    started = time.monotonic()
    with pytest.raises(JobCancelled):
        fetcher(tmp_path)(media_server.url("/slow.mp4?cancel"), should_cancel=lambda: time.monotonic() - started > 1)
    assert time.monotonic() - started < 10 and not files_under(tmp_path)


def test_the_servers_proxy_netrc_and_cookies_are_not_used(
    tmp_path: Path, media_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy in the environment (dead: using it would fail the fetch), a netrc and a cookie jar for the host:
    the download still goes direct, and the request carries no credentials."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".netrc").write_text("machine 127.0.0.1 login user password secret\n")
    (home / "cookies.txt").write_text("# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tsession\tsecret\n")
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NETRC", str(home / ".netrc"))
    got = fetcher(tmp_path / "cache")(media_server.url("/talk.mp4?creds"))
    assert got.size_bytes > 0
    sent = media_server.headers["/talk.mp4?creds"]
    assert "authorization" not in sent and "cookie" not in sent and "proxy-authorization" not in sent


def test_the_child_gets_no_credentials_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    env = child_env(tmp_path)
    assert set(env) == {
        "PATH",
        "HOME",
        "XDG_CONFIG_HOME",
        "XDG_CACHE_HOME",
        "LANG",
        "PYTHONPATH",
        "PYTHONDONTWRITEBYTECODE",
    }
    assert env["HOME"] == str(tmp_path)


def test_output_stems() -> None:
    from pipelines.fetch import url_stem

    assert url_stem("https://h/media/My%20Talk.mp4?x=1") == "My_Talk"
    assert url_stem("https://www.youtube.com/watch?v=abc", "Ask not: a speech") == "Ask_not_a_speech"
    assert url_stem("https://h/", "") == "download"

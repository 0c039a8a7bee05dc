"""LocalStorage: streamed uploads with a size cap, media probing, generated ids, safe output paths."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest

from pipelines.errors import InvalidMedia, MediaTooLong
from serve_app.errors import FileNotFound, FileTooLarge, OutputNotFound
from serve_app.jobs.models import FileInfo, is_valid_id
from serve_app.jobs.storage import LocalStorage, safe_display_name


async def _chunks(data: bytes, size: int = 8192) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def save(storage: LocalStorage, data: bytes | Iterable[bytes], filename: str, max_bytes: int = 10**7) -> FileInfo:
    chunks = _chunks(data) if isinstance(data, bytes) else _iter(data)
    return asyncio.run(storage.save_upload(chunks, filename=filename, content_type="audio/mpeg", max_bytes=max_bytes))


async def _iter(items: Iterable[bytes]) -> AsyncIterator[bytes]:
    for item in items:
        yield item


def test_upload_is_stored_under_a_generated_id(storage: LocalStorage, test_mp3: Path) -> None:
    data = test_mp3.read_bytes()
    info = save(storage, data, "talk.mp3")
    assert is_valid_id(info.file_id) and info.size == len(data) and info.filename == "talk.mp3"
    assert info.path == (storage.uploads_dir / info.file_id / f"{info.file_id}.mp3").resolve()
    assert info.path.read_bytes() == data
    assert (storage.uploads_dir / info.file_id / "meta.json").is_file()
    assert storage.get_file(info.file_id) == info
    assert sorted(p.name for p in storage.uploads_dir.iterdir()) == [info.file_id]  # no temp files left


@pytest.mark.parametrize("name", ["../../etc/passwd", "..\\..\\evil.mp3", "a\x00b.mp3", "/abs/x.mp3", "", "..", None])
def test_client_name_cannot_escape(storage: LocalStorage, test_mp3: Path, name: str | None) -> None:
    info = save(storage, test_mp3.read_bytes(), name)  # type: ignore[arg-type]
    assert info.path.parent == (storage.uploads_dir / info.file_id).resolve()
    assert "/" not in info.filename and "\x00" not in info.filename and info.filename not in {"", ".."}
    assert info.path.name.startswith(info.file_id)


def test_safe_display_name() -> None:
    assert safe_display_name("../../x/talk.mp4") == "talk.mp4"
    assert safe_display_name("C:\\videos\\talk.mp4") == "talk.mp4"
    assert safe_display_name("a\x00\nb.mp4") == "ab.mp4"
    assert safe_display_name(None) == "upload"


def test_too_large_is_rejected_while_streaming(storage: LocalStorage) -> None:
    seen: list[int] = []

    def endless() -> Iterable[bytes]:
        for i in range(1000):
            seen.append(i)
            yield b"x" * 1024

    with pytest.raises(FileTooLarge) as exc:
        save(storage, endless(), "big.mp4", max_bytes=10 * 1024)
    assert exc.value.http_status == 413
    assert len(seen) == 11  # stopped at the first chunk over the cap, not at the end of the stream
    assert list(storage.uploads_dir.iterdir()) == []


def test_non_media_is_rejected(storage: LocalStorage) -> None:
    with pytest.raises(InvalidMedia) as exc:
        save(storage, b"this is not a video at all\n" * 100, "notes.mp4")
    assert exc.value.http_status == 415
    assert list(storage.uploads_dir.iterdir()) == []


def test_media_longer_than_max_duration_is_rejected(tmp_path: Path, test_mp3: Path) -> None:
    storage = LocalStorage(tmp_path / "var", max_duration_s=1.0)
    with pytest.raises(MediaTooLong, match="'talk.mp3' lasts") as exc:
        save(storage, test_mp3.read_bytes(), "talk.mp3")
    assert exc.value.http_status == 413 and ".upload-" not in exc.value.message
    assert list(storage.uploads_dir.iterdir()) == []
    assert save(LocalStorage(tmp_path / "other", max_duration_s=60.0), test_mp3.read_bytes(), "talk.mp3").size


def test_empty_upload_is_rejected(storage: LocalStorage) -> None:
    with pytest.raises(InvalidMedia):
        save(storage, b"", "empty.mp4")
    assert list(storage.uploads_dir.iterdir()) == []


def test_cancelled_upload_leaves_nothing(storage: LocalStorage) -> None:
    async def run() -> None:
        async def slow() -> AsyncIterator[bytes]:
            yield b"x" * 100
            await asyncio.sleep(10)
            yield b"y"

        task = asyncio.create_task(storage.save_upload(slow(), filename="a.mp4", content_type=None, max_bytes=1000))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    assert list(storage.uploads_dir.iterdir()) == []


def test_get_file_unknown_or_malformed(storage: LocalStorage) -> None:
    for file_id in ["0" * 32, "../uploads", "", "x" * 32]:
        with pytest.raises(FileNotFound):
            storage.get_file(file_id)


def test_job_dir_and_output_path(storage: LocalStorage) -> None:
    job_id = "a" * 32
    assert storage.job_dir(job_id) == storage.jobs_dir / job_id
    with pytest.raises(ValueError):
        storage.job_dir("../x")
    out = storage.job_dir(job_id) / "out"
    out.mkdir(parents=True)
    (out / "talk.es.srt").write_text("1\n")
    (storage.job_dir(job_id) / "secret.txt").write_text("no")
    assert storage.output_path(job_id, "talk.es.srt") == out / "talk.es.srt"
    for name in ["../secret.txt", "..", "a/b", "..\\secret.txt", "", ".", "x\x00", "missing.mp4", "..secret.txt"]:
        with pytest.raises(OutputNotFound):
            storage.output_path(job_id, name)
    with pytest.raises(OutputNotFound):
        storage.output_path("../" + job_id, "talk.es.srt")

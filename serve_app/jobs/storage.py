"""File storage for the service: uploads (``root/uploads/<file_id>/``) and job artifacts (``root/jobs/<job_id>/``).

Uploads are stored under a generated ``file_id``, never under the client's name, and appear only once
complete and probed as media. An optional quota caps the bytes under the root: an upload that would pass it is
refused while streaming (InsufficientStorage, HTTP 507), and ``check_quota`` lets running jobs fail cleanly.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import re
import shutil
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path, PurePosixPath
from typing import IO, Protocol, TypeVar

from pipelines import media
from pipelines.errors import InvalidMedia, InvalidSubtitles, MediaTooLong
from pipelines.fileio import atomic_write_text, publish
from pipelines.subsource import read_subtitles, subtitle_kind
from serve_app.errors import FileNotFound, FileTooLarge, InsufficientStorage, OutputNotFound
from serve_app.jobs.models import FileInfo, is_valid_id, new_id, utcnow

logger = logging.getLogger(__name__)

_MEDIA_EXTS = {
    "mp4", "m4v", "mov", "mkv", "webm", "avi", "flv", "wmv", "mpg", "mpeg", "ts", "3gp", "ogv",
    "mp3", "m4a", "aac", "wav", "flac", "ogg", "oga", "opus", "wma", "aiff", "aif",
}  # fmt: skip
# ffprobe's format_name → a file extension, for uploads whose name gives none.
_FORMAT_EXTS = {"mov": "mp4", "mp4": "mp4", "matroska": "mkv", "webm": "webm", "mp3": "mp3", "wav": "wav",
                "flac": "flac", "ogg": "ogg", "avi": "avi", "aac": "aac", "mpegts": "ts", "flv": "flv"}  # fmt: skip
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PART_PREFIX = ".upload-"  # uploads in flight: ``uploads/.upload-<file_id>.part``
SESSIONS_DIR = ".sessions"  # resumable upload sessions: ``uploads/.sessions/<upload_id>/`` (serve_app.jobs.resumable)
SESSION_META = "session.json"
T = TypeVar("T")


def tree_bytes(root: Path, *, skip_prefix: str | None = None) -> int:
    """Total size in bytes of the regular files under ``root`` (0 if it does not exist); files whose name
    starts with ``skip_prefix`` are left out. Files that vanish meanwhile are ignored."""
    total = 0
    stack = [root]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False) and not (skip_prefix and entry.name.startswith(skip_prefix)):
                    total += entry.stat(follow_symlinks=False).st_size
            except OSError:
                continue
    return total


ANY_OWNER: object = object()
"""``get_file(..., owner=ANY_OWNER)``: no owner check (trusted callers: the worker, retention, a keyless bridge)."""


class Storage(Protocol):
    """Where uploads and job artifacts live."""

    async def save_upload(
        self,
        chunks: AsyncIterator[bytes],
        *,
        filename: str | None,
        content_type: str | None,
        max_bytes: int,
        owner: str | None = None,
    ) -> FileInfo:
        """Stream an upload to disk, recording ``owner`` (the uploader's key owner). Raises FileTooLarge past ``max_bytes`` (bytes), InvalidMedia if it is not
        media, InsufficientStorage when the disk is full; nothing is left behind on failure."""
        ...

    def get_file(self, file_id: str, *, owner: str | None | object = ANY_OWNER) -> FileInfo:
        """The upload's metadata; raises FileNotFound, also when ``owner`` is given and the upload is another
        owner's (answered exactly like a file that does not exist)."""
        ...

    def job_dir(self, job_id: str) -> Path:
        """The job's artifact folder (outputs go in its ``out/``). Raises ValueError on a malformed id."""
        ...

    def output_path(self, job_id: str, name: str) -> Path:
        """The path of an existing output file; raises OutputNotFound (also for names with ``/`` or ``..``)."""
        ...


def safe_display_name(filename: str | None) -> str:
    """The client's file name reduced to a harmless display string (no folders, no control characters)."""
    name = PurePosixPath((filename or "").replace("\\", "/")).name
    name = _CONTROL.sub("", name).strip()
    return name[:255] if name.strip(".") else "upload"


def _extension(filename: str, format_name: str) -> str:
    ext = PurePosixPath(filename).suffix.lower().lstrip(".")
    if ext in _MEDIA_EXTS:
        return ext
    for fmt in format_name.split(","):
        if fmt in _FORMAT_EXTS:
            return _FORMAT_EXTS[fmt]
    return "bin"


def upload_error(exc: BaseException, tmp_name: str, display: str) -> BaseException | None:
    """The error to answer for a failed upload (None: ``exc`` itself): a rejected file named as the client's
    file, not our temporary one, and a full disk as InsufficientStorage."""
    if isinstance(exc, (InvalidMedia, MediaTooLong, InvalidSubtitles)):
        logger.info("rejected upload %r: %s", display, exc)
        detail = exc.detail.replace(tmp_name, repr(display)) if exc.detail else exc.detail
        return type(exc)(exc.message.replace(tmp_name, repr(display)), detail=detail)
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return InsufficientStorage("not enough disk space to store the upload")
    return None


def _discard(exc: BaseException, tmp: Path, final_dir: Path, display: str) -> BaseException | None:
    """After a failed upload: remove its temp file and folder; returns ``upload_error``'s answer."""
    tmp.unlink(missing_ok=True)
    shutil.rmtree(final_dir, ignore_errors=True)
    return upload_error(exc, tmp.name, display)


def finish_upload(tmp: Path, record: FileInfo) -> None:
    """Move the streamed file into ``uploads/<file_id>/`` and write its ``meta.json`` (blocking: fsync)."""
    record.path.parent.mkdir()
    publish(tmp, record.path)
    atomic_write_text(record.path.parent / "meta.json", record.model_dump_json(indent=2))


class LocalStorage:
    """Files under one local folder ``root``. ``quota_bytes``: the most bytes the files under ``root`` may
    take (None: no cap). The quota is enforced by this process; uploads streaming in parallel reserve their
    bytes so that together they cannot pass it. ``max_duration_s``: the longest media an upload may hold
    (the ``MAX_DURATION`` setting; None: no cap), checked when it is probed."""

    def __init__(
        self, root: str | Path, *, quota_bytes: int | None = None, max_duration_s: float | None = None
    ) -> None:
        self.root = Path(root)
        self.max_duration_s = max_duration_s
        self.uploads_dir = self.root / "uploads"
        self.jobs_dir = self.root / "jobs"
        self.quota_bytes = quota_bytes
        self._inflight: dict[str, int] = {}  # file_id -> bytes streamed so far
        self._inflight_lock = threading.Lock()

    @property
    def sessions_dir(self) -> Path:
        return self.uploads_dir / SESSIONS_DIR

    def session_reserved_bytes(self) -> int:
        """The declared sizes of the open resumable upload sessions, in bytes. Their data files are named
        ``.upload-*`` so the quota's base leaves them out: each session counts for its whole size from creation."""
        total = 0
        try:
            metas = list(self.sessions_dir.glob(f"*/{SESSION_META}"))
        except OSError:
            return 0
        for meta in metas:
            try:
                total += int(json.loads(meta.read_text(encoding="utf-8"))["size"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return total

    def _quota_base(self) -> int:
        """What the quota counts besides the uploads streaming in this process (blocking: walks the tree)."""
        return tree_bytes(self.root, skip_prefix=_PART_PREFIX) + self.session_reserved_bytes()

    def reserve(self, extra_bytes: int, create: Callable[[], T]) -> T:
        """Run ``create`` (which makes a resumable session of ``extra_bytes``) only if the quota has room for it,
        counting the stored files, the open sessions and the uploads in flight; else InsufficientStorage (507).
        Blocking; the check and ``create`` run under one lock, so parallel sessions cannot pass the quota together."""
        if self.quota_bytes is None:
            return create()
        with self._inflight_lock:
            used = self._quota_base() + sum(self._inflight.values())
            if used + extra_bytes > self.quota_bytes:
                raise InsufficientStorage(
                    f"the upload would exceed the storage quota of {self.quota_bytes} bytes "
                    f"({used} bytes in use or reserved); try again later"
                )
            return create()

    def usage_bytes(self) -> int:
        """Bytes under ``root`` now (walks the tree)."""
        return tree_bytes(self.root)

    def check_quota(self, extra_bytes: int = 0) -> None:
        """Raise InsufficientStorage when the files under ``root`` plus ``extra_bytes`` pass the quota."""
        if self.quota_bytes is None:
            return
        used = self.usage_bytes()
        if used + extra_bytes > self.quota_bytes:
            raise InsufficientStorage(
                f"the storage quota of {self.quota_bytes} bytes is exhausted ({used + extra_bytes} bytes needed)"
            )

    def check_content(self, tmp: Path, display: str) -> str:
        """The stored file's extension, once its content passed: a subtitle file (by name or first bytes) must
        parse (InvalidSubtitles names the line), anything else must probe as media."""
        kind = subtitle_kind(tmp, display)
        if kind is not None:
            read_subtitles(tmp, display_name=display)
            return kind
        return _extension(display, media.probe(tmp, max_duration_s=self.max_duration_s).format_name)

    async def save_upload(
        self,
        chunks: AsyncIterator[bytes],
        *,
        filename: str | None,
        content_type: str | None,
        max_bytes: int,
        owner: str | None = None,
    ) -> FileInfo:
        """See ``Storage.save_upload``."""
        await asyncio.to_thread(self.uploads_dir.mkdir, parents=True, exist_ok=True)
        file_id = new_id()
        display = safe_display_name(filename)
        tmp = self.uploads_dir / f".upload-{file_id}.part"
        final_dir = self.uploads_dir / file_id
        try:
            await self._stream(chunks, tmp, max_bytes, file_id)
            record = await asyncio.to_thread(  # ffprobe, fsync and rename: off the event loop
                self.publish_upload, tmp, file_id=file_id, filename=filename, content_type=content_type, owner=owner
            )
        except BaseException as exc:  # also CancelledError: a client that hangs up leaves nothing behind
            public = _discard(exc, tmp, final_dir, display)
            if public is None:
                raise
            raise public from None
        finally:
            with self._inflight_lock:
                self._inflight.pop(file_id, None)
        logger.info("stored upload %s (%r, %d bytes)", file_id, display, record.size)
        return record

    def publish_upload(
        self, tmp: Path, *, file_id: str, filename: str | None, content_type: str | None, owner: str | None
    ) -> FileInfo:
        """Check the complete file ``tmp`` (media or subtitles) and publish it as upload ``file_id``: its folder's
        ``meta.json`` (what ``get_file`` reads) appears only once the file is in place, so no half upload is ever
        visible. Blocking. Raises InvalidMedia, MediaTooLong or InvalidSubtitles naming the client's file, or
        InsufficientStorage on a full disk; on any failure ``tmp`` and the upload's folder are removed."""
        display = safe_display_name(filename)
        final_dir = self.uploads_dir / file_id
        try:
            path = final_dir / f"{file_id}.{self.check_content(tmp, display)}"
            record = FileInfo(
                file_id=file_id,
                filename=display,
                content_type=content_type,
                size=tmp.stat().st_size,
                upload_time=utcnow(),
                path=path.resolve(),
                owner=owner,
            )
            finish_upload(tmp, record)
        except BaseException as exc:
            public = _discard(exc, tmp, final_dir, display)
            if public is None:
                raise
            raise public from None
        return record

    async def _stream(self, chunks: AsyncIterator[bytes], tmp: Path, max_bytes: int, file_id: str) -> int:
        size = 0
        # What is stored already, less the uploads in flight (they count through their reservations).
        base = None if self.quota_bytes is None else await asyncio.to_thread(self._quota_base)
        f: IO[bytes] = await asyncio.to_thread(open, tmp, "xb")
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise FileTooLarge(f"the upload is larger than the limit of {max_bytes} bytes")
                if base is not None:
                    self._reserve(file_id, size, base)
                if chunk:
                    await asyncio.to_thread(f.write, chunk)
        finally:
            await asyncio.to_thread(f.close)
        return size

    def _reserve(self, file_id: str, size: int, base: int) -> None:
        assert self.quota_bytes is not None
        with self._inflight_lock:
            others = sum(n for fid, n in self._inflight.items() if fid != file_id)
            if base + others + size > self.quota_bytes:
                raise InsufficientStorage(
                    f"the upload would exceed the storage quota of {self.quota_bytes} bytes; try again later"
                )
            self._inflight[file_id] = size

    def get_file(self, file_id: str, *, owner: str | None | object = ANY_OWNER) -> FileInfo:
        """See ``Storage.get_file``."""
        if not is_valid_id(file_id):
            raise FileNotFound(f"no uploaded file with id {file_id!r}")
        meta = self.uploads_dir / file_id / "meta.json"
        try:
            info = FileInfo.model_validate(json.loads(meta.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise FileNotFound(f"no uploaded file with id {file_id}") from exc
        if owner is not ANY_OWNER and info.owner != owner:
            raise FileNotFound(f"no uploaded file with id {file_id}")  # another tenant's: as if it did not exist
        if not info.path.is_file():
            raise FileNotFound(f"the uploaded file {file_id} is gone")
        return info

    def delete_file(self, file_id: str) -> None:
        """Remove an upload (no error if it does not exist)."""
        if is_valid_id(file_id):
            shutil.rmtree(self.uploads_dir / file_id, ignore_errors=True)

    def job_dir(self, job_id: str) -> Path:
        """See ``Storage.job_dir``."""
        if not is_valid_id(job_id):
            raise ValueError(f"malformed job id {job_id!r}")
        return self.jobs_dir / job_id

    def output_path(self, job_id: str, name: str) -> Path:
        """See ``Storage.output_path``."""
        bad = not name or name in {".", ".."} or any(c in name for c in ("/", "\\", "\x00")) or ".." in name
        if bad or name.startswith(".") or not is_valid_id(job_id):
            raise OutputNotFound(f"no output named {name!r}")
        out = self.jobs_dir / job_id / "out"
        path = out / name
        if not path.is_file() or path.resolve().parent != out.resolve():
            raise OutputNotFound(f"no output named {name!r} for job {job_id}")
        return path

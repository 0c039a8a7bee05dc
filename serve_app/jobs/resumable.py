"""Resumable uploads: a session is created with the file's declared size, then filled by small chunks, each
starting at the offset the server holds, so a dropped connection resumes where the bytes stopped.

A session lives on disk, so it survives a restart and is shared by ingress replicas on the same storage:

    uploads/.sessions/<upload_id>/session.json          what was declared (name, size, sha256, owner)
    uploads/.sessions/<upload_id>/.upload-data.part     the bytes received; its size IS the offset

A chunk is appended under an exclusive ``flock`` on the data file (a second writer gets 409), straight to disk
as it arrives. When the offset reaches the declared size the file is verified (size, the optional sha256),
checked as media by ffprobe, and published as the upload ``<upload_id>`` by the same code as ``POST
/files/upload`` (``LocalStorage.publish_upload``): its ``meta.json`` appears last, so a half file is never
visible as done. The upload id is then the file id ``POST /jobs`` takes.

A session counts against the storage quota for its whole declared size from creation. A session idle for
``upload.session_ttl_s`` is refused, and removed by the retention sweep (``sweep_expired``).
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import re
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from pydantic import AwareDatetime, BaseModel, Field

from pipelines.errors import VTError
from pipelines.fileio import atomic_write_text, sha256_file
from serve_app.errors import (
    BadRequest,
    ChecksumMismatch,
    FileNotFound,
    FileTooLarge,
    InsufficientStorage,
    UploadConflict,
    UploadNotFound,
)
from serve_app.jobs.models import FileInfo, is_valid_id, new_id, utcnow
from serve_app.jobs.storage import ANY_OWNER, SESSION_META, LocalStorage, safe_display_name

logger = logging.getLogger(__name__)

DATA_NAME = ".upload-data.part"  # the ``.upload-`` prefix keeps it out of the quota's base (the session reserves)
WRITE_BYTES = 1024 * 1024  # hand chunks to the disk in ~1 MiB writes (fewer thread hops)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class UploadSession(BaseModel):
    """What a client declared when it created the session (``size`` in bytes, ``sha256`` lowercase hex)."""

    upload_id: str
    filename: str
    content_type: str | None = None
    size: int = Field(gt=0)
    sha256: str | None = None
    owner: str | None = None
    created_at: AwareDatetime


@dataclass
class UploadState:
    """A session as the API shows it: ``offset`` bytes received of ``session.size``; ``expires_at`` (UTC) unless
    it is complete; ``file``: the published upload once complete."""

    session: UploadSession
    offset: int
    expires_at: datetime | None
    file: FileInfo | None = None

    @property
    def complete(self) -> bool:
        return self.file is not None


class UploadSessions:
    """Resumable upload sessions under ``storage``'s uploads folder. ``max_file_size``: the largest declared size
    (bytes); ``chunk_max_bytes``: the largest chunk; ``ttl_s``: how long an idle session lives."""

    def __init__(self, storage: LocalStorage, *, max_file_size: int, chunk_max_bytes: int, ttl_s: float) -> None:
        self.storage = storage
        self.max_file_size, self.chunk_max_bytes, self.ttl_s = max_file_size, chunk_max_bytes, ttl_s

    # ----------------------------------------------------------------------------- paths and state

    def _dir(self, upload_id: str) -> Path:
        return self.storage.sessions_dir / upload_id

    def _expiry(self, folder: Path) -> float:
        """When the session in ``folder`` expires (seconds since the epoch): its last write plus the TTL."""
        latest = max(os.stat(folder / name).st_mtime for name in (SESSION_META, DATA_NAME))
        return latest + self.ttl_s

    def _finished(self, upload_id: str, owner: str | None | object) -> FileInfo | None:
        try:
            return self.storage.get_file(upload_id, owner=owner)
        except FileNotFound:
            return None

    def _load(self, upload_id: str, owner: str | None | object) -> UploadState:
        """The session's state (blocking). Raises UploadNotFound for an unknown, expired or another key's session."""
        if not is_valid_id(upload_id):
            raise UploadNotFound(f"no upload session with id {upload_id!r}")
        folder = self._dir(upload_id)
        try:
            session = UploadSession.model_validate_json((folder / SESSION_META).read_bytes())
            offset = (folder / DATA_NAME).stat().st_size
            expires = self._expiry(folder)
        except (OSError, ValueError):
            done = self._finished(upload_id, owner)
            if done is None:
                raise UploadNotFound(f"no upload session with id {upload_id}") from None
            shutil.rmtree(folder, ignore_errors=True)  # a crash between publishing and clean-up left it
            return self._done_state(done)
        if owner is not ANY_OWNER and session.owner != owner:
            raise UploadNotFound(f"no upload session with id {upload_id}")  # another key's: as if none
        if expires < time.time():
            raise UploadNotFound(f"the upload session {upload_id} expired; start a new one")
        return UploadState(session, offset, datetime.fromtimestamp(expires, UTC))

    @staticmethod
    def _done_state(info: FileInfo) -> UploadState:
        session = UploadSession(
            upload_id=info.file_id, filename=info.filename, content_type=info.content_type, size=max(info.size, 1),
            owner=info.owner, created_at=info.upload_time,
        )  # fmt: skip
        return UploadState(session, info.size, None, info)

    # ----------------------------------------------------------------------------- the operations

    def create(
        self, *, filename: str, size: int, content_type: str | None, sha256: str | None, owner: str | None
    ) -> UploadState:
        """A new empty session (blocking). Raises FileTooLarge past ``max_file_size``, BadRequest for a bad
        checksum, InsufficientStorage when the quota has no room for ``size`` bytes."""
        if size > self.max_file_size:
            raise FileTooLarge(f"the upload's size {size} is larger than the limit of {self.max_file_size} bytes")
        digest = sha256.lower() if sha256 else None
        if digest is not None and not _SHA256.match(digest):
            raise BadRequest("sha256 must be 64 hexadecimal digits")
        session = UploadSession(
            upload_id=new_id(), filename=safe_display_name(filename), content_type=content_type, size=size,
            sha256=digest, owner=owner, created_at=utcnow(),
        )  # fmt: skip
        folder = self._dir(session.upload_id)

        def make() -> None:
            folder.mkdir(parents=True)
            (folder / DATA_NAME).touch(exist_ok=False)
            atomic_write_text(folder / SESSION_META, session.model_dump_json(indent=2))  # last: the session exists

        try:
            self.storage.reserve(size, make)
        except OSError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            if exc.errno == errno.ENOSPC:
                raise InsufficientStorage("not enough disk space to start the upload") from exc
            raise
        logger.info("upload session %s: %r, %d bytes", session.upload_id, session.filename, size)
        return UploadState(session, 0, datetime.fromtimestamp(time.time() + self.ttl_s, UTC))

    def get(self, upload_id: str, owner: str | None | object) -> UploadState:
        """The session's state, or the published file once complete (blocking). Raises UploadNotFound."""
        return self._load(upload_id, owner)

    def cancel(self, upload_id: str, owner: str | None | object) -> UploadState:
        """Remove the session and its bytes (blocking); returns its last state. Raises UploadNotFound (also for
        a complete upload)."""
        state = self._load(upload_id, owner)
        if state.complete:
            raise UploadNotFound(f"the upload {upload_id} is complete; it is the file {upload_id} now")
        shutil.rmtree(self._dir(upload_id), ignore_errors=True)
        logger.info("upload session %s cancelled at %d of %d bytes", upload_id, state.offset, state.session.size)
        return state

    async def write_chunk(
        self, upload_id: str, owner: str | None, *, start: int, length: int, total: int, body: AsyncIterator[bytes]
    ) -> UploadState:
        """Append the ``length`` bytes of ``body`` at ``start``; the last chunk publishes the file. Bytes received
        before a dropped connection are kept (the next chunk starts at the new offset). Raises UploadNotFound,
        UploadConflict (``start`` is not the offset, or another request is writing), BadRequest (the range does
        not fit the declared size), ChecksumMismatch, and the publishing errors of ``LocalStorage.publish_upload``.
        """
        state = await asyncio.to_thread(self._load, upload_id, owner)
        size = state.session.size
        if state.complete:
            raise UploadConflict(f"the upload {upload_id} is complete", offset=state.offset)
        if total != size:
            raise BadRequest(f"the Content-Range total {total} is not the upload's size {size}")
        if start + length > size:
            raise BadRequest(f"the chunk ends at byte {start + length}, past the upload's size {size}")
        fh = await asyncio.to_thread(self._lock, upload_id)
        try:
            offset = os.fstat(fh.fileno()).st_size
            if start != offset:
                raise UploadConflict(
                    f"the chunk starts at byte {start} but the upload is at byte {offset}; resume from there",
                    offset=offset,
                )
            await self._append(fh, body, length)
            offset = os.fstat(fh.fileno()).st_size
            if offset == size:
                return await asyncio.to_thread(self._publish, upload_id, state.session, fh)
        finally:
            await asyncio.to_thread(fh.close)  # also releases the lock
        expires = datetime.fromtimestamp(time.time() + self.ttl_s, UTC)
        return UploadState(state.session, offset, expires)

    def _lock(self, upload_id: str) -> IO[bytes]:
        try:
            fh = open(self._dir(upload_id) / DATA_NAME, "ab")  # noqa: SIM115 (closed by write_chunk)
        except FileNotFoundError:
            raise UploadNotFound(f"no upload session with id {upload_id}") from None
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            offset = os.fstat(fh.fileno()).st_size
            fh.close()
            raise UploadConflict(
                f"another request is writing to the upload {upload_id}", offset=offset, code="upload_busy"
            ) from None
        return fh

    @staticmethod
    async def _append(fh: IO[bytes], body: AsyncIterator[bytes], length: int) -> None:
        """Write at most ``length`` bytes of ``body`` to ``fh``, in order. On a dropped connection or a cancel, what
        arrived is still written (and kept: the offset is the file's size), and the error propagates."""
        left = length
        pending: list[bytes] = []
        pending_bytes = 0
        writing: asyncio.Task[int] | None = None

        async def flush() -> None:
            nonlocal pending, pending_bytes, writing
            data = b"".join(pending)
            pending, pending_bytes = [], 0
            writing = asyncio.ensure_future(asyncio.to_thread(fh.write, data))
            await asyncio.shield(writing)  # a cancel does not stop the thread: the finally waits for it

        try:
            async for piece in body:
                piece = piece[:left]
                left -= len(piece)
                pending.append(piece)
                pending_bytes += len(piece)
                if pending_bytes >= WRITE_BYTES:
                    await flush()
                if left <= 0:
                    break
        finally:
            if writing is not None and not writing.done():
                await asyncio.wait({writing})  # keep the order: that write lands before the rest
            if pending_bytes:
                await flush()
            await asyncio.to_thread(fh.flush)

    def _publish(self, upload_id: str, session: UploadSession, fh: IO[bytes]) -> UploadState:
        """Verify the complete data file and publish it (blocking, under the session's lock)."""
        folder = self._dir(upload_id)
        data = folder / DATA_NAME
        if not data.is_file():  # cancelled while this chunk was arriving
            raise UploadNotFound(f"the upload {upload_id} was cancelled")
        try:
            os.fsync(fh.fileno())
            received = os.fstat(fh.fileno()).st_size
            if received != session.size:
                raise UploadConflict(f"the upload holds {received} of {session.size} bytes", offset=received)
            if session.sha256 is not None:
                digest = sha256_file(data)
                if digest != session.sha256:
                    raise ChecksumMismatch(
                        f"the upload's sha256 is {digest}, not the declared {session.sha256}; start a new upload"
                    )
            info = self.storage.publish_upload(
                data, file_id=upload_id, filename=session.filename, content_type=session.content_type,
                owner=session.owner,
            )  # fmt: skip
        except VTError as exc:
            if not isinstance(exc, UploadConflict):
                shutil.rmtree(folder, ignore_errors=True)  # bad content or checksum: the session is over
            raise
        shutil.rmtree(folder, ignore_errors=True)
        logger.info("upload session %s complete: file %s, %d bytes", upload_id, info.file_id, info.size)
        return self._done_state(info)

    # ----------------------------------------------------------------------------- retention

    def sweep_expired(self, now: float | None = None) -> tuple[list[str], int]:
        """Remove the sessions idle past the TTL (blocking); returns their ids and the bytes freed. A folder
        without a readable ``session.json`` older than the TTL (a crash during creation) goes too."""
        now = time.time() if now is None else now
        removed: list[str] = []
        freed = 0
        try:
            folders = [p for p in self.storage.sessions_dir.iterdir() if is_valid_id(p.name)]
        except OSError:
            return removed, freed
        for folder in folders:
            try:
                expires = self._expiry(folder)
            except OSError:
                try:
                    expires = folder.stat().st_mtime + self.ttl_s
                except OSError:
                    continue
            if expires < now:
                freed += sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder.name)
        if removed:
            logger.info("retention: removed %d expired upload session(s)", len(removed))
        return removed, freed


def session_count(storage: LocalStorage) -> int:
    """How many sessions are on disk (for tests and the benchmark)."""
    try:
        return sum(1 for p in storage.sessions_dir.iterdir() if is_valid_id(p.name))
    except OSError:
        return 0

"""``UploadSessions._append``: a chunk's bytes land in order, and what arrived before a hang-up or a cancel is kept
(the offset a client resumes from is the data file's size)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

import pytest

from serve_app.jobs.resumable import WRITE_BYTES, UploadSessions

FIRST, SECOND = b"a" * (WRITE_BYTES + 10), b"b" * 100  # the first piece is written on the way, the second at the end


async def _body(end: BaseException | None) -> AsyncIterator[bytes]:
    yield FIRST
    yield SECOND
    if end is None:
        await asyncio.sleep(30)  # a client that stalls: the request is cancelled
    else:
        raise end


def _run(path: Path, end: BaseException | None, length: int = 10**9) -> None:
    async def main(fh: IO[bytes]) -> None:
        task = asyncio.ensure_future(UploadSessions._append(fh, _body(end), length))
        await asyncio.sleep(0.3)
        task.cancel()
        await task

    with open(path, "ab") as fh:
        asyncio.run(main(fh))


def test_a_cancelled_chunk_keeps_what_arrived_in_order(tmp_path: Path) -> None:
    path = tmp_path / "data"
    with pytest.raises(asyncio.CancelledError):
        _run(path, None)
    assert path.read_bytes() == FIRST + SECOND


def test_a_dropped_connection_keeps_what_arrived(tmp_path: Path) -> None:
    path = tmp_path / "data"
    with pytest.raises(ConnectionResetError):
        _run(path, ConnectionResetError("gone"))
    assert path.read_bytes() == FIRST + SECOND


def test_no_more_than_the_declared_length_is_written(tmp_path: Path) -> None:
    path = tmp_path / "data"
    _run(path, None, length=len(FIRST) + 7)
    assert path.read_bytes() == FIRST + SECOND[:7]

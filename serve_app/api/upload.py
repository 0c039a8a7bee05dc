"""Streaming ``multipart/form-data``: the one file part is handed on chunk by chunk as it arrives.

Starlette's form parser spools a whole upload to a temp file before the route runs; this one feeds the
file's bytes straight to ``Storage.save_upload`` (which enforces MAX_FILE_SIZE while streaming), so
memory stays flat and nothing is written twice. Text fields (small, capped) are collected on the way.
"""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterator
from typing import Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from serve_app.api import csrf
from serve_app.api.errors import CSRFFailed, InvalidRequest, RequestTooLarge

COALESCE_BYTES = 1024 * 1024  # hand on the file in ~1 MiB pieces (fewer thread hops per write)
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024  # after an early error, read at most this much more so the client sees the answer


class StreamingForm:
    """One multipart request. Use ``await open_file()``, then ``file_chunks()`` or ``read_file()``, then
    ``await finish()`` for the fields that follow the file. ``fields`` maps name → values.

    ``csrf_expected``: the token a ``csrf_token`` field must carry before the file part (CSRFFailed else).
    Raises InvalidRequest on a malformed body, a second file, too many or too large fields.
    """

    def __init__(
        self,
        request: Request,
        *,
        file_field: str = "file",
        csrf_expected: str | None = None,
        max_fields: int = 32,
        max_field_bytes: int = 64 * 1024,
    ) -> None:
        content_type, params = parse_options_header(request.headers.get("content-type", ""))
        if content_type != b"multipart/form-data" or b"boundary" not in params:
            raise InvalidRequest("expected a multipart/form-data body with a boundary")
        charset = params.get(b"charset", b"utf-8")
        try:
            self._charset = codecs.lookup(charset.decode("latin-1") if isinstance(charset, bytes) else charset).name
        except LookupError:
            self._charset = "utf-8"
        self.request = request
        self.file_field = file_field
        self.csrf_expected = csrf_expected
        self.max_fields, self.max_field_bytes = max_fields, max_field_bytes
        self.fields: dict[str, list[str]] = {}
        self.filename: str | None = None
        self.content_type: str | None = None
        self._stream: AsyncIterator[bytes] = request.stream().__aiter__()
        self._ended = False
        self._in_file = False
        self._file_seen = False
        self._file_done = False
        self._pending: list[bytes] = []
        self._part_name: str | None = None
        self._part_data = bytearray()
        self._part_headers: dict[bytes, bytes] = {}
        self._header_name = b""
        self._header_value = b""
        self._n_fields = 0
        callbacks: Any = {
            "on_part_begin": self._on_part_begin,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
        }
        self._parser = MultipartParser(params[b"boundary"], callbacks)

    # -------------------------------------------------------------------- public

    def field(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[-1] if values else None

    async def open_file(self) -> bool:
        """Read until the file part's headers (``filename``/``content_type`` set). False when there is none."""
        while not self._file_seen and await self._pump():
            pass
        return self._file_seen

    async def file_chunks(self) -> AsyncIterator[bytes]:
        """The file's bytes as they arrive, coalesced to about ``COALESCE_BYTES``."""
        while True:
            if self._pending and (self._file_done or sum(map(len, self._pending)) >= COALESCE_BYTES):
                data = b"".join(self._pending)
                self._pending.clear()
                yield data
            if self._file_done and not self._pending:
                return
            if not await self._pump() and not self._file_done:
                raise InvalidRequest("the multipart body ended inside the file")

    async def read_file(self, max_bytes: int) -> bytes:
        """The whole file in memory (small uploads only). Raises RequestTooLarge past ``max_bytes``."""
        buf = bytearray()
        async for chunk in self.file_chunks():
            buf += chunk
            if len(buf) > max_bytes:
                raise RequestTooLarge(f"the file is larger than the limit of {max_bytes} bytes")
        return bytes(buf)

    async def finish(self) -> dict[str, list[str]]:
        """Read the rest of the body; returns ``fields``."""
        while await self._pump():
            pass
        if self.csrf_expected is not None:
            raise CSRFFailed("missing CSRF token: send the X-CSRF-Token header or a csrf_token form field")
        return self.fields

    async def drain(self, limit: int = DRAIN_LIMIT_BYTES) -> None:
        """Discard up to ``limit`` more bytes of the body (after an error), so the client can read the answer."""
        seen = 0
        try:
            while not self._ended and seen < limit:
                chunk = await self._stream.__anext__()
                seen += len(chunk)
        except (StopAsyncIteration, ClientDisconnect):
            pass
        self._ended = True

    # -------------------------------------------------------------------- parsing

    async def _pump(self) -> bool:
        if self._ended:
            return False
        try:
            chunk = await self._stream.__anext__()
        except StopAsyncIteration:
            self._ended = True
            self._feed(None)
            return False
        if chunk:
            self._feed(chunk)
        return True

    def _feed(self, chunk: bytes | None) -> None:
        """Parse ``chunk`` (None: the end). A body that breaks the multipart syntax is InvalidRequest."""
        try:
            if chunk is None:
                self._parser.finalize()
            else:
                self._parser.write(chunk)
        except MultipartParseError as exc:
            raise InvalidRequest(f"malformed multipart body: {exc}") from None

    def _decode(self, raw: bytes) -> str:
        return raw.decode(self._charset, errors="replace")

    def _on_part_begin(self) -> None:
        self._part_headers, self._part_data, self._part_name = {}, bytearray(), None

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        self._part_headers[self._header_name.lower()] = self._header_value
        self._header_name, self._header_value = b"", b""

    def _on_headers_finished(self) -> None:
        _, options = parse_options_header(self._part_headers.get(b"content-disposition", b""))
        if b"name" not in options:
            raise InvalidRequest('a multipart part has no Content-Disposition "name"')
        self._part_name = self._decode(options[b"name"])
        if b"filename" not in options:
            self._n_fields += 1
            if self._n_fields > self.max_fields:
                raise InvalidRequest(f"too many form fields (at most {self.max_fields})")
            return
        if self._file_seen or self._part_name != self.file_field:
            raise InvalidRequest(f"send exactly one file, in the form field {self.file_field!r}")
        if self.csrf_expected is not None:
            raise CSRFFailed("missing CSRF token: put the csrf_token field before the file, or send X-CSRF-Token")
        self._file_seen = self._in_file = True
        self.filename = self._decode(options[b"filename"])
        ctype = self._part_headers.get(b"content-type")
        self.content_type = self._decode(ctype).strip() if ctype else None

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self._pending.append(data[start:end])
            return
        self._part_data += data[start:end]
        if len(self._part_data) > self.max_field_bytes:
            raise InvalidRequest(
                f"the form field {self._part_name!r} is too long (at most {self.max_field_bytes} bytes)"
            )

    def _on_part_end(self) -> None:
        if self._in_file:
            self._in_file, self._file_done = False, True
            return
        name, value = self._part_name or "", self._decode(bytes(self._part_data))
        if name == csrf.FORM_FIELD and self.csrf_expected is not None:
            if not csrf.tokens_match(self.csrf_expected, value):
                raise CSRFFailed("the csrf_token field does not match the csrftoken cookie")
            self.csrf_expected = None
            return
        self.fields.setdefault(name, []).append(value)

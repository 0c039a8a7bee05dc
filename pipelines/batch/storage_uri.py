"""The storage root as a URI: a local path (the default) or ``s3://bucket/prefix``.

Reads and writes go through pyarrow filesystems, the same ones Ray Data reads with, so a batch on
several nodes finds its inputs and leaves its outputs on shared storage. For an S3-compatible server
(MinIO, moto, Ceph) set ``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3``) as boto3 does; credentials
come from the usual ``AWS_*`` variables. Errors are raised as ``StorageError`` naming the URI.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from pipelines.errors import VTError
from pipelines.fileio import atomic_copy, atomic_path, atomic_write_text

if TYPE_CHECKING:
    import pyarrow.fs as pafs

MEDIA_SUFFIXES = frozenset(
    [".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".flv", ".wmv", ".mp3", ".wav", ".flac", ".m4a", ".aac", ".ogg", ".opus"]
)
_CHUNK_BYTES = 1 << 20


class StorageError(VTError):
    """A storage URI could not be listed, read or written."""


def is_remote(uri: str) -> bool:
    """True for a URI with a scheme other than ``file`` (``s3://...``)."""
    scheme = urlparse(str(uri)).scheme
    return len(scheme) > 1 and scheme != "file"  # "C:" is a Windows drive, not a scheme


def join(uri: str, *names: str) -> str:
    """``uri`` with ``names`` appended, '/'-separated for remote URIs."""
    if is_remote(uri):
        return "/".join([str(uri).rstrip("/"), *(n.strip("/") for n in names)])
    return str(Path(_local(uri), *names))


def basename(uri: str) -> str:
    return str(uri).rstrip("/").rsplit("/", 1)[-1]


def _local(uri: str) -> str:
    return urlparse(uri).path if str(uri).startswith("file://") else str(uri)


@lru_cache(maxsize=8)
def _s3(endpoint: str | None, region: str | None) -> pafs.FileSystem:
    import pyarrow.fs as pafs

    if not endpoint:
        return pafs.S3FileSystem(region=region)
    parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
    return pafs.S3FileSystem(
        endpoint_override=parsed.netloc, scheme=parsed.scheme or "https", region=region or "us-east-1"
    )


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem for ``uri`` and the path inside it."""
    import pyarrow.fs as pafs

    text = str(uri)
    if not is_remote(text):
        return pafs.LocalFileSystem(), str(Path(_local(text)).absolute())
    parsed = urlparse(text)
    if parsed.scheme in ("s3", "s3a"):
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        return _s3(endpoint, region), f"{parsed.netloc}{parsed.path}".rstrip("/")
    try:
        fs, path = pafs.FileSystem.from_uri(text)
        return fs, str(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid / ValueError for unknown schemes
        raise StorageError(f"unsupported storage URI {text!r}: {exc}") from exc


def exists(uri: str) -> bool:
    import pyarrow.fs as pafs

    fs, path = resolve(uri)
    return bool(fs.get_file_info(path).type == pafs.FileType.File)


def list_media(uri: str) -> list[str]:
    """The media files directly in the folder ``uri`` (by suffix), as URIs, sorted by name.

    Raises StorageError when ``uri`` is not a folder.
    """
    import pyarrow.fs as pafs

    fs, path = resolve(uri)
    try:
        infos = fs.get_file_info(pafs.FileSelector(path, recursive=False))
    except (OSError, FileNotFoundError) as exc:
        raise StorageError(f"cannot list {uri}: {exc}") from exc
    names = sorted(
        i.base_name for i in infos if i.type == pafs.FileType.File and Path(i.base_name).suffix.lower() in MEDIA_SUFFIXES
    )
    return [join(uri, n) for n in names]


def read_text(uri: str) -> str:
    fs, path = resolve(uri)
    try:
        with fs.open_input_stream(path) as fh:
            return bytes(fh.read()).decode("utf-8")
    except (OSError, FileNotFoundError) as exc:
        raise StorageError(f"cannot read {uri}: {exc}") from exc


def write_text(uri: str, text: str) -> str:
    """Write ``text``; locally through a temp file and a rename, so readers never see half of it."""
    if not is_remote(uri):
        atomic_write_text(Path(_local(uri)), text)
        return uri
    fs, path = resolve(uri)
    try:
        with fs.open_output_stream(path) as fh:  # an S3 object appears whole when the upload completes
            fh.write(text.encode("utf-8"))
    except OSError as exc:
        raise StorageError(f"cannot write {uri}: {exc}") from exc
    return uri


def sha256(uri: str) -> str:
    """The sha256 (hex) of the object at ``uri``. Raises StorageError when it cannot be read."""
    fs, path = resolve(uri)
    digest = hashlib.sha256()
    try:
        with fs.open_input_stream(path) as fh:
            while block := fh.read(_CHUNK_BYTES):
                digest.update(block)
    except (OSError, FileNotFoundError) as exc:
        raise StorageError(f"cannot read {uri}: {exc}") from exc
    return digest.hexdigest()


def download(uri: str, dest_dir: Path) -> Path:
    """A local path holding the object at ``uri``: the file itself when it is local, else a copy
    under ``dest_dir`` with the same base name. Raises StorageError."""
    if not is_remote(uri):
        return Path(_local(uri))
    fs, path = resolve(uri)
    dest = Path(dest_dir) / basename(uri)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:  # a download cut short leaves nothing under the final name
        with atomic_path(dest) as tmp, fs.open_input_stream(path) as src, open(tmp, "wb") as out:
            while block := src.read(_CHUNK_BYTES):
                out.write(block)
    except (OSError, FileNotFoundError) as exc:
        raise StorageError(f"cannot download {uri}: {exc}") from exc
    return dest


def upload(local: Path, uri: str) -> str:
    """Copy the local file to ``uri`` (a temp name and a rename when ``uri`` is local). Raises StorageError."""
    try:
        if not is_remote(uri):
            dst = Path(_local(uri))
            if Path(local).resolve() != dst.resolve():
                atomic_copy(local, dst)
            return uri
        fs, path = resolve(uri)
        with open(local, "rb") as src, fs.open_output_stream(path) as out:
            while block := src.read(_CHUNK_BYTES):
                out.write(block)
        return uri
    except OSError as exc:
        raise StorageError(f"cannot upload {local} to {uri}: {exc}") from exc


def delete(uri: str) -> None:
    """Remove the object at ``uri`` if it exists."""
    fs, path = resolve(uri)
    try:
        fs.delete_file(path)
    except (OSError, FileNotFoundError):
        pass

"""Where the offline store keeps its files: a local directory or an S3-compatible bucket.

One `OfflineLocation` per store, chosen by its root: a path, or `s3://bucket/prefix` (then
the endpoint comes from `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`, e.g.
`http://127.0.0.1:9000` for MinIO, and the credentials from the standard AWS environment
variables or the machine's AWS configuration, never from the URL). Everything goes through
`pyarrow.fs`, so Parquet is read and written by Arrow itself on either backend.
"""

from __future__ import annotations

import io
import mmap
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import xxhash

from feature_platform.errors import FeaturePlatformError

_CHUNK = 8 << 20


class OfflineLocationError(FeaturePlatformError, ValueError):
    """An offline store root that cannot be used (bad URL, unknown scheme)."""


@dataclass(frozen=True)
class Entry:
    """One file in a listed folder."""

    name: str
    size: int
    mtime_ns: int


def is_url(root: str | PurePath) -> bool:
    return isinstance(root, str) and "://" in root


def _s3_filesystem() -> pafs.S3FileSystem:
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    options: dict[str, Any] = {"region": region or "us-east-1"}
    if endpoint:
        parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
        options.update(endpoint_override=parsed.netloc, scheme=parsed.scheme or "https")
    if os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY"):
        # Given explicitly so a machine without instance metadata never waits for it.
        options.update(
            access_key=os.environ["AWS_ACCESS_KEY_ID"],
            secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
            session_token=os.environ.get("AWS_SESSION_TOKEN"),
        )
    return pafs.S3FileSystem(**options)


class OfflineLocation:
    """A root folder on a local disk or in a bucket, with the few operations the offline
    store needs. Paths handed around are the filesystem's own ('/abs/dir/x' locally,
    'bucket/prefix/x' on S3); `url` turns one into what a person should read."""

    def __init__(self, root: str | Path) -> None:
        if is_url(root):
            parsed = urlparse(str(root))
            if parsed.scheme != "s3":
                raise OfflineLocationError(
                    f"Offline store URL {root!r}: only local paths and s3:// URLs are supported."
                )
            if not parsed.netloc:
                raise OfflineLocationError(f"Offline store URL {root!r} names no bucket.")
            if parsed.query or parsed.username or parsed.password:
                raise OfflineLocationError(
                    f"Offline store URL {root!r}: give the endpoint in AWS_ENDPOINT_URL and the "
                    "credentials in the AWS environment variables, not in the URL."
                )
            self.fs: pafs.FileSystem = _s3_filesystem()
            self.local = False
            self.base = f"{parsed.netloc}/{parsed.path.strip('/')}".rstrip("/")
            self._scheme = "s3://"
        else:
            self.fs = pafs.LocalFileSystem()
            self.local = True
            self.base = str(Path(root).absolute())
            self._scheme = ""

    def __repr__(self) -> str:
        return f"OfflineLocation({self.url(self.base)!r})"

    def join(self, *parts: str) -> str:
        return "/".join([self.base, *parts])

    def url(self, path: str) -> str:
        """`path` as a person names it: a local path, or s3://bucket/key."""
        return f"{self._scheme}{path}"

    def pure_path(self, path: str) -> PurePath:
        """A path object for callers that use `.name` / `.stem` (a real Path locally)."""
        return Path(path) if self.local else PurePosixPath(path)

    def list(self, directory: str) -> list[Entry]:
        """Files directly in `directory` (none if it does not exist)."""
        infos = self.fs.get_file_info(pafs.FileSelector(directory, allow_not_found=True))
        return [
            Entry(info.base_name, info.size or 0, info.mtime_ns or 0)
            for info in infos
            if info.type == pafs.FileType.File
        ]

    def list_dirs(self, directory: str) -> list[str]:
        infos = self.fs.get_file_info(pafs.FileSelector(directory, allow_not_found=True))
        return [info.base_name for info in infos if info.type == pafs.FileType.Directory]

    def exists(self, path: str) -> bool:
        return self.fs.get_file_info(path).type != pafs.FileType.NotFound

    def mkdir(self, directory: str) -> None:
        if self.local:  # object stores have no folders to make
            self.fs.create_dir(directory, recursive=True)

    def read_bytes(self, path: str) -> bytes:
        with self.fs.open_input_stream(path) as stream:
            return stream.read()

    def write_bytes(self, path: str, data: bytes) -> None:
        with self.fs.open_output_stream(path) as stream:
            stream.write(data)

    def open_output(self, path: str) -> pa.NativeFile:
        return self.fs.open_output_stream(path)

    def digest(self, path: str) -> str:
        """The checksum (`checksum`) of a file's bytes: memory-mapped on a local disk (no
        copy), read in chunks from an object store."""
        if self.local:
            with open(path, "rb") as file:
                if os.fstat(file.fileno()).st_size == 0:
                    return checksum(b"")
                with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                    return checksum(mapped)
        digest = xxhash.xxh3_128()
        with self.fs.open_input_stream(path) as stream:
            for chunk in _chunks(stream):
                digest.update(chunk)
        return digest.hexdigest()

    def load_array(self, path: str) -> tuple[np.ndarray, str]:
        """A saved numpy array and the checksum of its file (see `map_array`)."""
        array, data = self.map_array(path)
        return array, checksum(data)

    def map_array(self, path: str) -> tuple[np.ndarray, Any]:
        """A saved numpy array and the whole file's bytes, to check with `checksum`. Locally
        the file is mapped read-only and the array is a view of that mapping (no copy);
        pages come in as first touched, a large block at a time (fault-around), which here
        was faster overall than populating them up front. Elsewhere the file is read."""
        if not self.local:
            data = self.read_bytes(path)
            return np.load(io.BytesIO(data), allow_pickle=False), data
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size == 0:
                raise ValueError(f"{path} is empty")
            mapped = mmap.mmap(file.fileno(), 0, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
        header = io.BytesIO(mapped[: min(size, 1 << 16)])
        version = np.lib.format.read_magic(header)
        readers = {
            (1, 0): np.lib.format.read_array_header_1_0,
            (2, 0): np.lib.format.read_array_header_2_0,
        }
        if version not in readers:
            raise ValueError(f"{path}: .npy format {version} is not one this store writes")
        shape, fortran, dtype = readers[version](header)
        if dtype.hasobject:
            raise ValueError(f"{path} holds Python objects")
        array = np.ndarray(
            shape, dtype=dtype, buffer=mapped, offset=header.tell(), order="F" if fortran else "C"
        )
        return array, mapped

    def move(self, source: str, target: str) -> None:
        self.fs.move(source, target)

    def delete_file(self, path: str) -> None:
        try:
            self.fs.delete_file(path)
        except FileNotFoundError:
            pass

    def delete_dir(self, path: str) -> None:
        try:
            self.fs.delete_dir(path)
        except FileNotFoundError:
            pass


def _chunks(stream: pa.NativeFile) -> Iterator[bytes]:
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            return
        yield chunk


def checksum(data: Any) -> str:
    """XXH3-128 of `data`: detects damage at memory speed (~18 GB/s here, sha256 ~0.8), so
    verifying a large index on every load costs little. Not a defence against an attacker
    who can write the store (they could rewrite the Parquet as well)."""
    return xxhash.xxh3_128_hexdigest(data)


class HashingWriter:
    """A write-only stream that keeps the checksum of what went through it (for np.save)."""

    def __init__(self, stream: pa.NativeFile) -> None:
        self._stream = stream
        self._digest = xxhash.xxh3_128()

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._digest.update(view)
        self._stream.write(view)
        return len(view)

    def flush(self) -> None:
        self._stream.flush()

    def hexdigest(self) -> str:
        return self._digest.hexdigest()

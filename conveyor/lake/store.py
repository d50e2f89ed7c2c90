"""Where a lake keeps its objects: a local folder or an S3-compatible bucket under a prefix.

A store holds objects under ``/``-separated keys relative to the lake's root
(``data/<source>/<relation>/<extract-id>/part-00000.parquet``). It offers what the lake
needs and nothing more (docs/architecture.md, "The object-store lake"):

* :meth:`Store.open_output` - a part, streamed with bounded memory (a multipart upload on S3),
  durable once closed;
* :meth:`Store.put_new` - a small object (the manifest) written whole, only if no object has
  that key yet: two writers can never both commit one extract id;
* :meth:`Store.get`, :meth:`Store.objects`, :meth:`Store.delete`;
* :meth:`Store.open_input` and :meth:`Store.arrow` - parts read as Arrow streams, by
  ``pyarrow.parquet`` and ``pyarrow.dataset`` (which DuckDB scans and the PostgreSQL COPY
  encoder reads), whatever the store.

The S3 store moves part bytes with ``pyarrow.fs.S3FileSystem`` (native multipart writes and
ranged reads, no copy through Python) and commits manifests with ``obstore``'s create-only
PUT (``If-None-Match: *``), which Arrow's filesystem cannot send. Both are configured only
from the standard AWS environment (``AWS_ENDPOINT_URL``, keys, region); no credential is
ever part of a lake's location or of a message.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlparse

from conveyor.errors import LakeError

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.fs as pafs

#: what S3 accepts as a bucket name (path-style and virtual-host-style alike)
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")

#: how often a transient S3 error (throttling, 5xx, a reset connection) is retried, with backoff
S3_ATTEMPTS = 5


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def copy_hashed(source: Any, target: Any, chunk_bytes: int = 8 << 20) -> str:
    """Stream ``source`` into ``target`` (file-like objects) in chunks; the sha256 of what passed."""
    import hashlib

    digest = hashlib.sha256()
    while chunk := source.read(chunk_bytes):
        digest.update(chunk)
        target.write(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class StoredObject:
    """One object of a store: its key (relative to the lake root) and size in bytes."""

    key: str
    size: int


class Store(ABC):
    """The objects of one lake. Keys are relative, ``/``-separated, without ``.`` or ``..``."""

    #: where the lake is, for messages (``/srv/lake`` or ``s3://bucket/prefix``; never a secret)
    location: str

    @abstractmethod
    def open_output(self, key: str) -> pa.NativeFile:
        """A new object to stream into (bounded memory); it exists, durably, once closed."""

    @abstractmethod
    def open_input(self, key: str) -> pa.NativeFile:
        """An object to read with random access (a Parquet part)."""

    @abstractmethod
    def put_new(self, key: str, data: bytes) -> bool:
        """Write ``data`` whole under ``key`` unless the key exists; whether it was written.

        Atomic: a reader sees the whole object or none, and of two writers of one key
        exactly one succeeds.
        """

    @abstractmethod
    def get(self, key: str) -> bytes | None:
        """An object's bytes, or None when there is no such object."""

    @abstractmethod
    def objects(self, prefix: str) -> list[StoredObject]:
        """Every object whose key lies under the folder ``prefix``, sorted by key."""

    @abstractmethod
    def children(self, prefix: str) -> list[str]:
        """The names of the folders directly under the folder ``prefix``, sorted."""

    @abstractmethod
    def delete(self, keys: list[str]) -> None:
        """Remove objects, in the order given; a missing one is no error."""

    @abstractmethod
    def arrow(self) -> tuple[pafs.FileSystem, str]:
        """The Arrow filesystem and the base path that keys are appended to (``base/key``)."""

    def arrow_path(self, key: str) -> str:
        """The path of ``key`` in :meth:`arrow`'s filesystem."""
        return f"{self.arrow()[1]}/{check_key(key)}"


def check_key(key: str) -> str:
    """``key`` itself, after checking it is relative and has no empty, ``.`` or ``..`` segment."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise LakeError(f'refusing the lake key "{key}": keys are relative paths without "." or "..".')
    return key


def open_store(location: str | Path) -> Store:
    """The store a lake location names: ``s3://bucket[/prefix]`` or a local folder."""
    text = str(location)
    if text.startswith("s3://"):
        return S3Store(text)
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise LakeError(
            f'the lake location "{text}" uses the scheme "{scheme}://", which Conveyor cannot store a lake in.',
            hint='Give a local folder or "s3://bucket/prefix" as lake.path in conveyor.yaml.',
        )
    return LocalStore(Path(text))


class _DurableFile:
    """A local file that is fsynced when closed (Arrow wraps it in a ``PythonFile``)."""

    def __init__(self, handle: BinaryIO):
        self.handle = handle

    def write(self, data: bytes | memoryview) -> int:
        return self.handle.write(data)

    def flush(self) -> None:
        self.handle.flush()

    def tell(self) -> int:
        return self.handle.tell()

    @property
    def closed(self) -> bool:
        return self.handle.closed

    def close(self) -> None:
        if not self.handle.closed:
            self.handle.flush()
            os.fsync(self.handle.fileno())
            self.handle.close()
            fsync_dir(Path(self.handle.name).parent)


class LocalStore(Store):
    """A lake in a local folder: the same semantics with files, fsync and hard links."""

    def __init__(self, root: Path):
        self.root = root
        self.location = str(root)

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def open_output(self, key: str) -> pa.NativeFile:
        import pyarrow as pa

        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        return pa.PythonFile(_DurableFile(open(path, "wb")), mode="w")

    def open_input(self, key: str) -> pa.NativeFile:
        import pyarrow as pa

        return pa.OSFile(str(self.path(key)), "rb")

    def put_new(self, key: str, data: bytes) -> bool:
        """Written to a temporary file, fsynced, then hard-linked into place: ``link`` refuses an existing name."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with open(temp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(temp, target)
            except FileExistsError:
                return False
            fsync_dir(target.parent)
            return True
        finally:
            temp.unlink(missing_ok=True)

    def get(self, key: str) -> bytes | None:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            return None

    def objects(self, prefix: str) -> list[StoredObject]:
        top = self.path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        found = []
        for folder, _dirs, files in os.walk(top):
            for name in files:
                path = Path(folder) / name
                found.append(StoredObject(path.relative_to(self.root).as_posix(), path.stat().st_size))
        return sorted(found, key=lambda o: o.key)

    def children(self, prefix: str) -> list[str]:
        top = self.path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        if not top.is_dir():
            return []
        return sorted(child.name for child in top.iterdir() if child.is_dir())

    def delete(self, keys: list[str]) -> None:
        parents = []
        for key in keys:
            path = self.path(key)
            path.unlink(missing_ok=True)
            parents.append(path.parent)
        for parent in dict.fromkeys(parents):  # a folder left empty goes too, as on an object store
            if parent != self.root and parent.is_dir() and not any(parent.iterdir()):
                shutil.rmtree(parent, ignore_errors=True)

    def arrow(self) -> tuple[pafs.FileSystem, str]:
        import pyarrow.fs as pafs

        return pafs.LocalFileSystem(), str(self.root)


def _aws_env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


class S3Store(Store):
    """A lake in an S3-compatible bucket under a prefix, configured from the AWS environment.

    ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` name a non-AWS endpoint (Arrow's
    filesystem does not read them itself, so they are passed on); keys, session token and
    region come from the usual variables (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
    ``AWS_SESSION_TOKEN``, ``AWS_REGION`` / ``AWS_DEFAULT_REGION``).
    """

    def __init__(self, url: str):
        parsed = urlparse(url)
        if parsed.username or parsed.password:
            raise LakeError(
                f'the lake location "{_redact(url)}" holds credentials; Conveyor does not take them from there.',
                hint="Write lake.path as s3://bucket/prefix and set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(or AWS_PROFILE) in the environment; and replace the key, it was written into a file.",
            )
        if parsed.scheme != "s3" or not parsed.netloc or parsed.query or parsed.fragment:
            raise LakeError(
                f'"{_redact(url)}" is not a lake location of the form s3://bucket/prefix.',
                hint="Write lake.path as s3://bucket or s3://bucket/prefix (no query, no credentials).",
            )
        self.bucket = parsed.netloc
        if not _BUCKET.match(self.bucket) or ".." in self.bucket:
            raise LakeError(
                f'"{_redact(url)}" does not name a usable bucket: "{self.bucket}" is not an S3 bucket name.',
                hint="A bucket name has 3 to 63 lower-case letters, digits, dots and hyphens; fix lake.path.",
            )
        self.prefix = parsed.path.strip("/")
        if self.prefix and any(p in ("", ".", "..") for p in self.prefix.split("/")):
            raise LakeError(
                f'the lake location "{_redact(url)}" has an empty, "." or ".." segment in its prefix.',
                hint='Write the prefix as plain names separated by "/", e.g. s3://bucket/team/lake.',
            )
        self.location = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        self.endpoint = _aws_env("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
        self.region = _aws_env("AWS_REGION", "AWS_DEFAULT_REGION")
        self._fs: pafs.S3FileSystem | None = None
        self._obstore: Any = None

    @property
    def base(self) -> str:
        return f"{self.bucket}/{self.prefix}" if self.prefix else self.bucket

    def probe(self) -> None:
        """Check that the bucket answers and takes writes and deletes under the prefix (a small object).

        Raises :class:`LakeError` (one paragraph, no credential) naming what failed.
        """
        key = f"_conveyor-probe-{uuid.uuid4().hex[:12]}"
        if not self.put_new(key, b"conveyor probe\n"):
            raise LakeError(f"writing {self.location}/{key} failed: an object with that name exists.")
        self.delete([key])

    def filesystem(self) -> pafs.S3FileSystem:
        if self._fs is None:
            import pyarrow.fs as pafs

            self._fs = pafs.S3FileSystem(
                endpoint_override=self.endpoint,
                region=self.region,
                retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=S3_ATTEMPTS),
                check_directory_existence_before_creation=False,
            )
        return self._fs

    def _store(self) -> Any:
        if self._obstore is None:
            from obstore.store import S3Store as ObjectStore

            options: dict[str, Any] = {}
            if self.endpoint:
                options["endpoint"] = self.endpoint
            profile = shared_profile()
            if profile is not None:  # obstore reads the environment's keys, not ~/.aws: hand it the profile's
                options["credential_provider"] = profile.credentials
            region = self.region or (profile.region if profile is not None else None)
            if region:
                options["region"] = region
            self._obstore = ObjectStore(
                self.bucket,
                prefix=self.prefix or None,
                client_options={"allow_http": bool(self.endpoint and self.endpoint.startswith("http://"))},
                retry_config={"max_retries": S3_ATTEMPTS - 1, "backoff": {"init_backoff": _td(0.1)}},
                **options,
            )
        return self._obstore

    def _failed(self, what: str, key: str, exc: BaseException) -> LakeError:
        return store_error(what, f"{self.location}/{key}", exc)

    def open_output(self, key: str) -> pa.NativeFile:
        try:
            return self.filesystem().open_output_stream(f"{self.base}/{check_key(key)}")
        except OSError as exc:
            raise self._failed("writing", key, exc) from None

    def open_input(self, key: str) -> pa.NativeFile:
        try:
            return self.filesystem().open_input_file(f"{self.base}/{check_key(key)}")
        except OSError as exc:
            raise self._failed("reading", key, exc) from None

    def put_new(self, key: str, data: bytes) -> bool:
        """One PUT with ``If-None-Match: *``: S3 answers 412 when the key exists, and the object
        appears whole or not at all. A transient failure is retried (``S3_ATTEMPTS``); when the
        first attempt had landed, the retry meets the same bytes, which count as written.
        """
        import time

        import obstore
        from obstore.exceptions import AlreadyExistsError

        for attempt in range(S3_ATTEMPTS):
            try:
                obstore.put(self._store(), check_key(key), data, mode="create", use_multipart=False)
            except AlreadyExistsError:
                # a retried PUT whose first attempt landed (its answer lost) finds its own bytes there
                return self.get(key) == data
            except Exception as exc:  # obstore's errors: NotFound, PermissionDenied, Generic...
                if attempt + 1 < S3_ATTEMPTS and _lost_in_transit(exc):
                    time.sleep(0.1 * 2**attempt)
                    continue
                raise self._failed("writing", key, exc) from None
            return True
        raise AssertionError("unreachable")

    def get(self, key: str) -> bytes | None:
        import obstore
        from obstore.exceptions import NotFoundError

        try:
            return bytes(obstore.get(self._store(), check_key(key)).bytes())
        except (NotFoundError, FileNotFoundError):
            return None
        except Exception as exc:
            raise self._failed("reading", key, exc) from None

    def objects(self, prefix: str) -> list[StoredObject]:
        import obstore

        folder = prefix.strip("/")
        try:
            found = [
                StoredObject(str(meta["path"]), int(meta["size"]))
                for chunk in obstore.list(self._store(), prefix=check_key(folder) if folder else None)
                for meta in chunk
            ]
        except Exception as exc:
            raise self._failed("listing", folder, exc) from None
        return sorted(found, key=lambda o: o.key)

    def children(self, prefix: str) -> list[str]:
        import obstore

        folder = prefix.strip("/")
        try:
            listed = obstore.list_with_delimiter(self._store(), prefix=check_key(folder) if folder else None)
        except Exception as exc:
            raise self._failed("listing", folder, exc) from None
        return sorted(str(p).rstrip("/").rsplit("/", 1)[-1] for p in listed["common_prefixes"])

    def delete(self, keys: list[str]) -> None:
        import obstore

        for key in keys:  # one by one, in order: the manifest before the parts
            try:
                obstore.delete(self._store(), check_key(key))
            except FileNotFoundError:
                pass
            except Exception as exc:
                raise self._failed("deleting", key, exc) from None

    def arrow(self) -> tuple[pafs.FileSystem, str]:
        return self.filesystem(), self.base


def _lost_in_transit(exc: BaseException) -> bool:
    """Whether a request failed on the wire after it was sent (a reset or closed connection), not by an answer.

    obstore retries answers of 5xx and throttling and failed connects itself, but not a
    conditional PUT whose connection broke after sending: it cannot know whether the PUT
    landed. :meth:`S3Store.put_new` can (a retry then meets its own bytes), so it retries these.
    """
    text = str(exc)
    return (
        "error sending request" in text and "(Connect)" not in text and "status" not in text.split("error sending")[0]
    )


def store_error(what: str, where: str, exc: BaseException) -> LakeError:
    """A failed store request as one paragraph: what, where, the store's answer (no credential), what to do."""
    text = _redact(" ".join(str(exc).split()).split(" Debug source:", 1)[0])
    hint = _hint_for(text)
    return LakeError(f"{what} {where} failed: {_answer(text).rstrip('.')}.", hint=hint)


def _answer(text: str) -> str:
    """What the store answered, short: ``NoSuchBucket: The specified bucket does not exist (HTTP 404)``.

    The clients' messages carry the request's URL, timings and the whole XML error document;
    a person needs the S3 error code and message, or, when nothing answered, that.
    """
    code = re.search(r"<Code>([^<]*)</Code>", text)
    if code:
        message = re.search(r"<Message>([^<]*)</Message>", text)
        status = re.search(r"status code: (\d{3})", text)
        return (
            code.group(1)
            + (f": {message.group(1)}" if message else "")
            + (f" (HTTP {status.group(1)})" if status else "")
        )
    if "error sending request" in text:
        retries = re.search(r"after (\d+) retries", text)
        tried = f" ({int(retries.group(1)) + 1} attempts)" if retries else ""
        return f"no answer: the connection to the endpoint failed or broke{tried}"
    return text[:400]


@dataclass(frozen=True)
class SharedProfile:
    """Static keys of a profile in the shared AWS files (``~/.aws/credentials``, ``~/.aws/config``)."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)
    region: str | None = None

    def credentials(self) -> dict[str, Any]:
        """obstore's credential provider callback."""
        return {
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
            "token": self.token,
            "expires_at": None,
        }


def shared_profile() -> SharedProfile | None:
    """The keys of ``AWS_PROFILE`` (or ``default``) in the shared credentials file, when the
    environment names no keys itself.

    Arrow's AWS SDK reads the shared files on its own; obstore, which commits manifests, reads
    only the environment (and instance roles). Profiles whose keys come from elsewhere (SSO,
    a role to assume, a credential process) are not read here: give such a host its keys in
    the environment or an instance role (docs/deploy.md).
    """
    import configparser

    if os.environ.get("AWS_ACCESS_KEY_ID"):
        return None
    name = os.environ.get("AWS_PROFILE") or os.environ.get("AWS_DEFAULT_PROFILE") or "default"
    home = Path.home() / ".aws"
    files = configparser.RawConfigParser(), configparser.RawConfigParser()
    try:
        files[0].read(os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or home / "credentials", encoding="utf-8")
        files[1].read(os.environ.get("AWS_CONFIG_FILE") or home / "config", encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return None
    credentials, config = files
    section = name if name == "default" else f"profile {name}"
    key = credentials.get(name, "aws_access_key_id", fallback=None)
    secret = credentials.get(name, "aws_secret_access_key", fallback=None)
    if not key or not secret:
        return None
    return SharedProfile(
        key,
        secret,
        credentials.get(name, "aws_session_token", fallback=None),
        config.get(section, "region", fallback=None),
    )


def _td(seconds: float) -> Any:
    from datetime import timedelta

    return timedelta(seconds=seconds)


def _redact(text: str) -> str:
    """``text`` without anything that looks like a credential (a key id, a secret, a signature)."""
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID"):
        value = os.environ.get(name)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    text = re.sub(r"(?i)(signature|credential|x-amz-security-token)=[^&\s]+", r"\1=***", text)
    return re.sub(r"//[^/@\s]+@", "//***@", text)


def _hint_for(text: str) -> str:
    lowered = text.lower()
    if "nosuchbucket" in lowered or "bucket does not exist" in lowered or "no such bucket" in lowered:
        return "Create the bucket, or correct the bucket in lake.path."
    if any(s in lowered for s in ("accessdenied", "access denied", "forbidden", "invalidaccesskeyid", "signature")):
        return "Check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and the bucket's policy."
    if any(s in lowered for s in ("connection refused", "couldn't connect", "connect error", "error sending request")):
        return "Check AWS_ENDPOINT_URL (nothing answers there, or the network drops the connection)."
    if any(
        s in lowered
        for s in ("slow_down", "slowdown", "throttl", "internal_failure", "internalerror", "status code: 50", "http 50")
    ):
        return (
            f"The store kept failing after {S3_ATTEMPTS} attempts with backoff (throttling or an outage on its "
            "side): try again later."
        )
    return "Check lake.path and the AWS environment (AWS_ENDPOINT_URL, keys, region)."

"""One storage layer for every location a user names: local paths, KFP mounts, gs://, s3://.

Locations (`parse` decides, before any work):
- A local path, absolute or relative.
- KFP's mounted paths: `/gcs/<bucket>/<key>` (Vertex AI mounts gs://bucket there with
  gcsfuse), `/s3/<bucket>/<key>` and `/minio/<bucket>/<key>` (the KFP launcher's local view of
  s3:// and minio:// artifacts). When the mount's bucket folder exists in this process the path
  is read and written locally; otherwise it names the object `gs://<bucket>/<key>` (for /gcs/)
  or `s3://<bucket>/<key>` (for /s3/ and /minio/), so a path copied from a pod works outside it.
- `gs://bucket/key`: Google Cloud Storage. Credentials: Application Default Credentials
  (GOOGLE_APPLICATION_CREDENTIALS, gcloud's login, or the metadata server: Workload Identity).
  STORAGE_EMULATOR_HOST=http://host:port points it at an emulator (no credentials then).
- `s3://bucket/key` (and KFP's `minio://bucket/key`, the same store): AWS S3 or any
  S3-compatible server (MinIO, SeaweedFS, Ceph). Endpoint from AWS_ENDPOINT_URL_S3 or
  AWS_ENDPOINT_URL (path-style addressing then, as MinIO, SeaweedFS and Ceph serve;
  TFKFP_S3_ADDRESSING_STYLE=virtual for stores that serve virtual-hosted names only), region
  from AWS_REGION or AWS_DEFAULT_REGION, credentials from the AWS SDK's default chain
  (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, web identity/IRSA, instance
  roles). With an endpoint that is not AWS's own, request checksums are computed and response
  checksums checked only when an operation requires them (AWS_REQUEST_CHECKSUM_CALCULATION and
  AWS_RESPONSE_CHECKSUM_VALIDATION default to `when_required` there): the AWS SDK's default
  since 2025 sends every upload `aws-chunked` with a trailing checksum, which MinIO and Ceph
  versions refuse (kubeflow/pipelines#13314). A variable the user sets wins.
Anything else (hdfs://, gcs://, http://, `gs:/typo`) is an InputError naming the input and the
accepted forms.

Built on pyarrow.fs (S3FileSystem, GcsFileSystem): already in the image, streaming C++ readers
that pyarrow's CSV/Parquet readers use directly. Checked against gcp-storage-emulator (list,
read, write, custom metadata) and moto's S3 server. Limit: pyarrow's S3 filesystem cannot write
user metadata (x-amz-meta-*, apache/arrow#45857), so this module offers none on any scheme:
keep such facts in object contents (the pusher's marker JSON, a small tag object).

Errors: every function takes `what`, the input's name, and turns the failures a user can fix
into `InputError("<what>: ...")` one-liners, the same for every stage and both clouds: unknown
scheme, bucket missing, object missing, access denied, no credentials, endpoint not answering
(after a bounded retry of transient errors: RETRY_SECONDS, or `with retry_seconds(s):`), an
S3 endpoint answering neither path-style nor virtual-hosted requests like an S3 store, an
empty folder/prefix, a glob matching nothing. Other errors propagate.

API (URIs are strings; a local path is a URI too):
    parse(uri, what) -> Location             validate and split; Location.uri is normalised
    check(uri, what) -> str                  parse only: fail early on a bad scheme
    join(uri, *parts) -> str
    is_local(uri) -> bool / local_path(uri) -> str | None
    stat(uri, what, version=False) -> Stat | None      a file's size, mtime (and version)
    object_metadata(uri, what) -> dict       the store's metadata: generation, md5Hash, ETag
    exists(uri, what) -> bool                a file or a non-empty folder
    list_files(uri, what, version=False, suffixes=None, hidden=False) -> list[Stat]
        a file, a folder (recursive; names starting with . or _ skipped unless hidden) or a
        glob (*, ?, [..] in the last parts); raises
        InputError when nothing matches. version=True adds each object's generation (GCS),
        ETag (S3) or mtime_ns (local): one metadata request per object, 8 at a time.
    list_dir(uri, what) -> (folders, files)  one level: sub-folder names, Stat of files; on
        object stores a folder is a prefix with at least one file under it
    delete() on S3: pyarrow then writes an empty `parent/` marker object when the folder
        became empty (it keeps "directories" alive); list_dir and list_files ignore those.
    open_input(uri, what, seekable=False)    a pyarrow NativeFile (stream, or random access)
    read_bytes(uri, what) / read_text(uri, what)
    open_output(uri, what) -> context manager yielding a writable stream
    write_bytes(uri, data, what) / write_text(uri, text, what)
    copy(src, dst, what)                     one file within a bucket (server side)
    delete(uri, what, missing_ok=True) / delete_tree(uri, what)
    download(uri, local_dir, what) -> str    a file or folder tree into local_dir
    upload(local_path, uri, what)            a file or folder tree
    filesystem(uri, what) -> (pyarrow FileSystem, path)  for readers that take one
    errors(what, uri, action) -> context manager translating storage errors
    disk_errors(what, path) -> context manager: a full or read-only local filesystem, one line

Over ~400 lines on purpose: the house rule is one module for storage access on every scheme
(parsing, credentials, error wording, listing, reading, writing); split, each part would need
the others' error translation.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import fnmatch
import os
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import lru_cache

from tfkfp.containers.runtime import InputError, log

ACCEPTED = (
    "a local path, a KFP mount (/gcs/<bucket>/..., /s3/<bucket>/..., /minio/<bucket>/...), "
    "gs://<bucket>/... or s3://<bucket>/..."
)
# How long calls keep retrying transient errors (5xx, 429, dropped connections) by default.
RETRY_SECONDS = float(os.environ.get("TFKFP_STORAGE_RETRY_SECONDS", "120"))
_retry = contextvars.ContextVar("tfkfp_storage_retry", default=RETRY_SECONDS)
_MOUNTS = {"/gcs/": "gs", "/s3/": "s3", "/minio/": "s3"}
_SCHEMES = {"gs": "gs", "s3": "s3", "minio": "s3"}
# Looks like a URI: "name:/..." or a known store's name followed by ':' (gs:bucket, s3:x).
_URI_LIKE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):(/|(?=.))")
_KNOWN_NAMES = {"gs", "gcs", "s3", "s3a", "s3n", "minio", "hdfs", "http", "https", "file", "az"}
_GLOB_CHARS = re.compile(r"[*?\[]")
_CHUNK = 8 << 20


@dataclass(frozen=True)
class Location:
    """A parsed location. scheme is 'file', 'gs' or 's3'; for files `key` is the path."""

    uri: str
    scheme: str
    bucket: str = ""
    key: str = ""

    @property
    def path(self) -> str:
        """The path pyarrow's filesystem for this scheme takes."""
        if self.scheme == "file":
            return self.key
        return f"{self.bucket}/{self.key}".rstrip("/")

    @property
    def bucket_uri(self) -> str:
        return f"{self.scheme}://{self.bucket}" if self.bucket else self.uri


@dataclass(frozen=True)
class Stat:
    """One file: its URI, size in bytes, modification time (Unix seconds, None if unknown).

    `version` is set by version=True: GCS generation, S3 ETag, local mtime in nanoseconds.
    """

    uri: str
    size: int
    mtime: float | None
    version: str | None = None


def _uri(scheme: str, bucket: str, key: str) -> str:
    return f"{scheme}://{bucket}/{key}" if key else f"{scheme}://{bucket}"


def parse(uri: str, what: str) -> Location:
    """Validates a location and tells where it lives; unknown schemes fail here."""
    if not isinstance(uri, str) or not uri.strip():
        raise InputError(f"{what}: expected {ACCEPTED}, got {uri!r}")
    uri = uri.strip()
    match = _URI_LIKE.match(uri)
    if match and (match.group(2) == "/" or match.group(1).lower() in _KNOWN_NAMES):
        name = match.group(1).lower()
        rest = uri[len(match.group(1)) + 1 :]
        if name not in _SCHEMES or not rest.startswith("//"):
            raise InputError(f"{what}: unsupported location {uri!r}; expected {ACCEPTED}")
        bucket, _, key = rest[2:].partition("/")
        if not bucket or not re.fullmatch(r"[a-z0-9][a-z0-9._\-]*", bucket):
            raise InputError(f"{what}: expected {name}://<bucket>/<path>, got {uri!r}")
        key = re.sub(r"/+", "/", key)
        scheme = _SCHEMES[name]
        return Location(_uri(scheme, bucket, key), scheme, bucket, key)
    path = os.path.abspath(uri)
    for mount, scheme in _MOUNTS.items():
        if path.startswith(mount):
            bucket, _, key = path[len(mount) :].partition("/")
            if bucket and not os.path.isdir(mount + bucket):
                # Not mounted in this process: the object the path stands for.
                return Location(_uri(scheme, bucket, key), scheme, bucket, key)
    return Location(path, "file", "", path)


def check(uri: str, what: str) -> str:
    """Parses only (no I/O) and returns the normalised URI: fails early on a bad location."""
    return parse(uri, what).uri


def is_local(uri: str) -> bool:
    return parse(uri, "location").scheme == "file"


def local_path(uri: str) -> str | None:
    loc = parse(uri, "location")
    return loc.key if loc.scheme == "file" else None


def join(uri: str, *parts: str) -> str:
    loc = parse(uri, "location")
    if loc.scheme == "file":
        return os.path.join(loc.key, *parts)
    tail = "/".join(p.strip("/") for p in parts if p.strip("/"))
    key = f"{loc.key.rstrip('/')}/{tail}" if loc.key.rstrip("/") else tail
    return _uri(loc.scheme, loc.bucket, key)


@contextlib.contextmanager
def retry_seconds(seconds: float) -> Iterator[None]:
    """Bounds the retry of transient errors for storage calls made inside the block."""
    token = _retry.set(float(seconds))
    try:
        yield
    finally:
        _retry.reset(token)


def retry_limit() -> float:
    """Seconds storage calls made now retry transient errors (see `retry_seconds`)."""
    return _retry.get()


# --- filesystems -----------------------------------------------------------------------------


def _s3_endpoint() -> str:
    """The S3 endpoint override, or '' for AWS's own."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL", "")


def _endpoint(scheme: str) -> str:
    if scheme == "gs":
        return os.environ.get("STORAGE_EMULATOR_HOST", "") or "storage.googleapis.com"
    return _s3_endpoint() or "the AWS S3 endpoint"


def _check_google_credentials(loc: Location, what: str) -> None:
    """Fails in one line, at once, when Application Default Credentials cannot be found.

    pyarrow's own lookup would instead retry for RETRY_SECONDS and then blame the endpoint.
    """
    import google.auth.exceptions

    try:
        _adc()
    except (google.auth.exceptions.GoogleAuthError, OSError) as err:
        raise InputError(
            f"{what}: no Google Cloud credentials for {loc.bucket_uri} ({type(err).__name__}; "
            "set GOOGLE_APPLICATION_CREDENTIALS, run with a service account or Workload "
            "Identity, or set STORAGE_EMULATOR_HOST for an emulator)"
        ) from None


@lru_cache(maxsize=1)
def _adc():
    import google.auth

    return google.auth.default(scopes=["https://www.googleapis.com/auth/devstorage.read_write"])


def _aws_credentials_configured() -> bool:
    """Whether any AWS credential source other than an instance role is visible."""
    env = os.environ
    if env.get("AWS_ACCESS_KEY_ID") or env.get("AWS_WEB_IDENTITY_TOKEN_FILE"):
        return True
    if env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") or env.get(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI"
    ):
        return True
    files = [env.get("AWS_SHARED_CREDENTIALS_FILE"), env.get("AWS_CONFIG_FILE")]
    files += [os.path.expanduser("~/.aws/credentials"), os.path.expanduser("~/.aws/config")]
    return any(f and os.path.isfile(f) for f in files)


def _s3_attempts(seconds: float) -> int:
    """Attempts whose waits fit in `seconds`: the AWS SDK's standard strategy waits about
    0.5 s, 1 s, 2 s, ... (capped at 20 s) between attempts (measured here with pyarrow 25)."""
    attempts, total = 1, 0.0
    while attempts < 30:
        wait = min(20.0, 0.5 * 2 ** (attempts - 1))
        if total + wait > seconds:
            break
        total += wait
        attempts += 1
    return attempts


@lru_cache(maxsize=1)
def _instance_metadata_answers() -> bool:
    """Whether an EC2-style instance metadata service (instance-role credentials) answers."""
    import socket
    import urllib.parse

    if os.environ.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true":
        return False
    url = os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://169.254.169.254")
    parsed = urllib.parse.urlsplit(url)
    try:
        socket.create_connection((parsed.hostname, parsed.port or 80), timeout=1).close()
    except OSError:
        return False
    return True


def _check_aws_credentials(loc: Location, what: str) -> None:
    """Fails in one line, at once, when the AWS SDK would find no credentials at all.

    Without any, the SDK sends unsigned requests, which S3 refuses and some S3-compatible
    servers answer with retried 5xx errors: minutes before a misleading message.
    """
    if not _aws_credentials_configured() and not _instance_metadata_answers():
        raise InputError(
            f"{what}: no AWS credentials for {loc.bucket_uri} (set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, AWS_PROFILE or a web identity; for KFP's MinIO see the "
            "docs/cluster/storage.md)"
        )


ADDRESSING_VARIABLE = "TFKFP_S3_ADDRESSING_STYLE"
_STYLES = ("path", "virtual")
# The AWS SDK reads these when a client is made; `when_required` for endpoints not AWS's own.
_CHECKSUM_VARIABLES = ("AWS_REQUEST_CHECKSUM_CALCULATION", "AWS_RESPONSE_CHECKSUM_VALIDATION")
_env_lock = threading.Lock()


def _is_aws(endpoint: str) -> bool:
    """Whether an endpoint override still names AWS's own S3 (which takes every checksum)."""
    import urllib.parse

    host = urllib.parse.urlsplit(endpoint if "://" in endpoint else f"//{endpoint}").hostname
    return bool(host) and (host.endswith(".amazonaws.com") or host.endswith(".amazonaws.com.cn"))


def _addressing_style(endpoint: str) -> str:
    """'path' or 'virtual': the user's TFKFP_S3_ADDRESSING_STYLE, else path with an endpoint
    override (MinIO, SeaweedFS, Ceph) and virtual-hosted on AWS."""
    style = os.environ.get(ADDRESSING_VARIABLE, "").strip().lower()
    if style and style not in _STYLES:
        raise InputError(
            f"{ADDRESSING_VARIABLE}: expected 'path' or 'virtual', got "
            f"{os.environ[ADDRESSING_VARIABLE]!r}"
        )
    return style or ("path" if endpoint else "virtual")


@contextlib.contextmanager
def _checksum_defaults(endpoint: str) -> Iterator[None]:
    """Sets the checksum variables to `when_required` while an S3 client for a non-AWS
    endpoint is made (the SDK reads them then); the user's own values are left as they are."""
    if not endpoint or _is_aws(endpoint):
        yield
        return
    with _env_lock:
        added = [k for k in _CHECKSUM_VARIABLES if k not in os.environ]
        for key in added:
            os.environ[key] = "when_required"
        try:
            yield
        finally:
            for key in added:
                os.environ.pop(key, None)


@lru_cache(maxsize=16)
def _make_fs(
    scheme: str,
    endpoint: str,
    region: str,
    retry: float,
    identity: tuple = (),
    style: str = "",
    checksums: tuple = (),
):
    """A filesystem per store, endpoint, region, retry budget and credential identity.

    The AWS SDK reads credentials and checksum settings when the filesystem is made:
    `identity` (the variables that name the credentials) and `checksums` (the user's checksum
    variables) keep a process that changes them from reusing the old ones.
    """
    import pyarrow.fs as pafs

    if scheme == "gs":
        emulator = os.environ.get("STORAGE_EMULATOR_HOST", "")
        if emulator:
            url_scheme, _, host = emulator.rpartition("://")
            return pafs.GcsFileSystem(
                anonymous=True,
                endpoint_override=host.rstrip("/"),
                scheme=url_scheme or "http",
                retry_time_limit=timedelta(seconds=retry),
            )
        return pafs.GcsFileSystem(retry_time_limit=timedelta(seconds=retry))
    kwargs = {}
    if endpoint:
        kwargs["endpoint_override"] = endpoint
        kwargs["force_virtual_addressing"] = style == "virtual"
    if region:
        kwargs["region"] = region
    with _checksum_defaults(endpoint):
        return pafs.S3FileSystem(
            retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=_s3_attempts(retry)),
            connect_timeout=10,
            request_timeout=120,
            **kwargs,
        )


def _fs_for(loc: Location, what: str):
    import pyarrow.fs as pafs

    if loc.scheme == "file":
        return pafs.LocalFileSystem()
    retry = _retry.get()
    if loc.scheme == "gs":
        emulator = os.environ.get("STORAGE_EMULATOR_HOST", "")
        if not emulator:
            _check_google_credentials(loc, what)
        return _make_fs("gs", emulator, "", retry)
    _check_aws_credentials(loc, what)
    endpoint = _s3_endpoint()
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION", "")
    identity = tuple(
        os.environ.get(k, "") for k in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_SESSION_TOKEN")
    )
    checksums = tuple(os.environ.get(k, "") for k in _CHECKSUM_VARIABLES)
    style = _addressing_style(endpoint)
    return _make_fs("s3", endpoint, region, retry, identity, style, checksums)


def filesystem(uri: str, what: str):
    """(pyarrow FileSystem, path in it) for a location, for readers that take a filesystem."""
    loc = parse(uri, what)
    return _fs_for(loc, what), loc.path


# --- errors ----------------------------------------------------------------------------------


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    # pyarrow's GCS messages carry a long google::cloud::Status; its first clause says it all.
    text = re.sub(r"google::cloud::Status\(", "", text)
    text = text.split(" error_info=")[0].split("; Details:")[0]
    return text.splitlines()[0][:300] if text else type(err).__name__


def _classify(err: BaseException) -> str | None:
    text = str(err)
    lowered = text.lower()
    if getattr(err, "errno", None) in _DISK_ERRNOS:
        return "disk"
    if "no_such_bucket" in lowered or "nosuchbucket" in lowered:
        return "bucket"
    if "oauth2 access token" in lowered or "no valid credentials" in lowered:
        return "credentials"
    if (
        any(
            s in text
            for s in ("INVALID_ACCESS_KEY_ID", "InvalidAccessKeyId", "SIGNATURE_DOES_NOT_MATCH")
        )
        or "signaturedoesnotmatch" in lowered
    ):
        return "bad-credentials"
    if (
        any(
            s in text
            for s in ("ACCESS_DENIED", "AccessDenied", "PERMISSION_DENIED", "status code: 403")
        )
        or "status code: 401" in text
        or isinstance(err, PermissionError)
    ):
        return "denied"
    if any(
        s in text
        for s in (
            "NETWORK_CONNECTION",
            "curlCode: 7",
            "curlCode: 6",
            "curlCode: 28",
            "CURL error [7]",
            "CURL error [6]",
            "CURL error [28]",
            # the connection dropped on every retry: the peer's side of the network
            "curlCode: 52",
            "curlCode: 56",
            "CURL error [52]",
            "CURL error [56]",
            # the server answered 503 until the retries gave up
            "SERVICE_UNAVAILABLE",
            "UNAVAILABLE: Retry policy exhausted",
            "Could not connect",
            "Could not resolve",
        )
    ):
        return "unreachable"
    if _NOT_S3_ANSWER.search(text):
        return "addressing"
    if isinstance(err, FileNotFoundError) or "NOT_FOUND" in text or "Path does not exist" in text:
        return "missing"
    return None


# Answers an S3 store gives to a request addressed in a style it does not serve, and answers
# without an S3 error document (a web server or gateway that is no S3 store at that address).
_NOT_S3_ANSWER = re.compile(
    r"SecondLevelDomainForbidden|PermanentRedirect|"
    r"HTTP status (405|501)\) during \w+ operation: ?$|"
    r"RESOURCE_NOT_FOUND during ListObjects\w* operation: ?$",
    re.MULTILINE,
)


def _style_answers(loc: Location, style: str) -> bool:
    """Whether the S3 endpoint lists `loc`'s bucket like an S3 store in this addressing style."""
    import pyarrow.fs as pafs

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION", "")
    fs = _make_fs("s3", _s3_endpoint(), region, 0.0, ("probe",), style)
    try:
        fs.get_file_info(pafs.FileSelector(loc.bucket))
    except OSError as err:
        return _classify(err) not in ("addressing", "unreachable")
    return True


def _addressing_error(loc: Location, what: str, detail: str) -> InputError:
    """One line for an endpoint that did not answer like an S3 store: which style it does
    answer (one probe of the other style), or that it answers neither."""
    endpoint = _s3_endpoint()
    tried = _addressing_style(endpoint)
    other = "virtual" if tried == "path" else "path"
    if _style_answers(loc, other):
        return InputError(
            f"{what}: the S3 endpoint {endpoint} serves {loc.bucket_uri} with {other}-style "
            f"addressing only; set {ADDRESSING_VARIABLE}={other} ({detail})"
        )
    return InputError(
        f"{what}: the S3 endpoint {endpoint} answers neither path-style nor virtual-hosted "
        f"requests for {loc.bucket_uri} like an S3 store; check AWS_ENDPOINT_URL ({detail})"
    )


# A local write that cannot succeed until the user frees room or changes the folder's mount.
_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}


def disk_error(err: BaseException, what: str, where: str) -> InputError | None:
    """A one-line error for a full, over-quota or read-only filesystem; None for other errors.

    Stages publish through local folders, so these are the failures a user meets there. The
    libraries that write for them (TensorFlow, Beam) wrap the OS error in their own exceptions
    (`ResourceExhaustedError` inside a `RuntimeError`): its text is what is left to recognise.
    """
    code = getattr(err, "errno", None)
    if code not in _DISK_ERRNOS:
        text = str(err)
        code = next((c for c in sorted(_DISK_ERRNOS) if os.strerror(c) in text), None)
        if code is None:
            return None
    return InputError(f"{what}: {os.strerror(code).lower()} writing {where} (Errno {code})")


@contextlib.contextmanager
def disk_errors(what: str, where: str) -> Iterator[None]:
    """Turns a full, over-quota or read-only filesystem under `where` into a one-line error."""
    try:
        yield
    except OSError as err:
        translated = disk_error(err, what, where)
        if translated is None:
            raise
        raise translated from None


def _bucket_exists(loc: Location, what: str) -> bool | None:
    import pyarrow.fs as pafs

    fs = _fs_for(loc, what)
    try:
        info = fs.get_file_info(loc.bucket)
    except OSError:
        return None
    if info.type == pafs.FileType.NotFound and loc.scheme == "s3" and _s3_endpoint():
        # A HEAD's 404 has no body: a listing tells a missing bucket (NoSuchBucket) from an
        # endpoint that is no S3 store at that address.
        try:
            fs.get_file_info(pafs.FileSelector(loc.bucket))
        except OSError as err:
            if _classify(err) == "addressing":
                raise _addressing_error(loc, what, _first_line(err)) from None
    return info.type != pafs.FileType.NotFound


def _gave_up(started: float) -> str:
    """How long a call really tried: the client's retry budget bounds its retries' start, not
    the last attempt's end (pyarrow's GCS client was seen giving up after 218 s of 120)."""
    waited = time.monotonic() - started
    return f"gave up after {waited:.0f} s of retries, limit {_retry.get():g} s"


def _translate(
    err: BaseException, what: str, loc: Location, action: str, started: float
) -> InputError | None:
    kind = _classify(err)
    if kind == "disk":
        return disk_error(err, what, loc.uri)
    if kind is None or loc.scheme == "file" and kind not in ("missing", "denied"):
        return None
    if kind == "missing" and loc.scheme != "file" and _bucket_exists(loc, what) is False:
        kind = "bucket"
    detail = _first_line(err)
    if kind == "addressing" and loc.scheme == "s3" and _s3_endpoint():
        return _addressing_error(loc, what, detail)
    if kind == "bucket":
        return InputError(f"{what}: bucket {loc.bucket_uri} does not exist")
    if kind == "missing":
        return InputError(f"{what}: no such file or folder {loc.uri}")
    if kind == "credentials" and loc.scheme == "gs":
        return InputError(
            f"{what}: no Google Cloud credentials for {loc.bucket_uri} (set "
            "GOOGLE_APPLICATION_CREDENTIALS, run with a service account or Workload Identity, "
            "or set STORAGE_EMULATOR_HOST for an emulator)"
        )
    if kind in ("credentials", "bad-credentials", "denied") and loc.scheme == "s3":
        if not _aws_credentials_configured():
            return InputError(
                f"{what}: no AWS credentials for {loc.bucket_uri} (set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, AWS_PROFILE or a web identity; for KFP's MinIO see the "
                "docs/cluster/storage.md)"
            )
        if kind == "bad-credentials":
            return InputError(f"{what}: the AWS credentials are not valid for {loc.uri} ({detail})")
    if kind in ("denied", "credentials", "bad-credentials"):
        return InputError(f"{what}: no permission to {action} {loc.uri} ({detail})")
    return InputError(
        f"{what}: cannot reach {_endpoint(loc.scheme)} for {loc.bucket_uri} "
        f"({_gave_up(started)}; {detail})"
    )


@contextlib.contextmanager
def errors(what: str, uri: str | Location, action: str = "read") -> Iterator[Location]:
    """Turns storage failures a user can fix into one-line InputErrors; others propagate."""
    loc = uri if isinstance(uri, Location) else parse(uri, what)
    started = time.monotonic()
    try:
        yield loc
    except InputError:
        raise
    except OSError as err:
        translated = _translate(err, what, loc, action, started)
        if translated is None:
            raise
        raise translated from None


# --- reading and listing ---------------------------------------------------------------------


def _stat_of(loc: Location, info) -> Stat:
    mtime = info.mtime.timestamp() if info.mtime is not None else None
    if loc.scheme == "file":
        return Stat(info.path, info.size, mtime)
    return Stat(_uri(loc.scheme, loc.bucket, info.path.partition("/")[2]), info.size, mtime)


def _with_version(stat: Stat, what: str) -> Stat:
    loc = parse(stat.uri, what)
    if loc.scheme == "file":
        return replace(stat, version=str(os.stat(loc.key).st_mtime_ns))
    meta = object_metadata(stat.uri, what)
    version = meta.get("generation") or meta.get("ETag") or meta.get("etag") or ""
    return replace(stat, version=version.strip('"') or None)


def object_metadata(uri: str, what: str) -> dict[str, str]:
    """The store's own metadata of one object (one request), as pyarrow reports it.

    GCS: generation, md5Hash, crc32c, size, updated, ...; S3: ETag, Content-Length,
    Last-Modified. Local files: size and mtime_ns.
    """
    with errors(what, uri) as loc:
        if loc.scheme == "file":
            st = os.stat(loc.key)
            return {"size": str(st.st_size), "mtime_ns": str(st.st_mtime_ns)}
        with _fs_for(loc, what).open_input_file(loc.path) as fh:
            meta = fh.metadata()
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in meta.items()
    }


def stat(uri: str, what: str, version: bool = False) -> Stat | None:
    """A file's Stat, or None when there is no file there (a folder is not a file)."""
    import pyarrow.fs as pafs

    with errors(what, uri) as loc:
        info = _fs_for(loc, what).get_file_info(loc.path)
    if info.type != pafs.FileType.File:
        return None
    result = _stat_of(loc, info)
    return _with_version(result, what) if version else result


def exists(uri: str, what: str) -> bool:
    """Whether a file or a folder (a prefix with objects under it) is there.

    A missing bucket is an InputError, not False: nothing can be there, or be written there.
    """
    import pyarrow.fs as pafs

    with errors(what, uri) as loc:
        info = _fs_for(loc, what).get_file_info(loc.path)
    if info.type == pafs.FileType.NotFound and loc.scheme != "file":
        if _bucket_exists(loc, what) is False:
            raise InputError(f"{what}: bucket {loc.bucket_uri} does not exist")
    return info.type != pafs.FileType.NotFound


def _glob_base(loc: Location) -> tuple[str, str]:
    """(the path before the first wildcard part, the pattern) for a glob location."""
    parts = loc.path.split("/")
    first = next(i for i, p in enumerate(parts) if _GLOB_CHARS.search(p))
    return "/".join(parts[:first]), loc.path


def list_files(
    uri: str,
    what: str,
    version: bool = False,
    suffixes: tuple[str, ...] | None = None,
    hidden: bool = False,
) -> list[Stat]:
    """Files at a location: the file itself, every file under a folder, or a glob's matches.

    Under a folder, hidden names (starting with '.' or '_', as Hadoop/Beam write `_SUCCESS`)
    are skipped unless `hidden`.
    Sorted by URI. Raises InputError naming `what` when nothing is there.
    """
    import pyarrow.fs as pafs

    loc = parse(uri, what)
    fs = _fs_for(loc, what)
    pattern = None
    with errors(what, loc, "list"):
        if _GLOB_CHARS.search(loc.path):
            base, pattern = _glob_base(loc)
            base_info = fs.get_file_info(base) if base else None
            if loc.scheme != "file" and "/" not in base:
                if _bucket_exists(loc, what) is False:
                    raise InputError(f"{what}: bucket {loc.bucket_uri} does not exist")
            infos = (
                fs.get_file_info(pafs.FileSelector(base, recursive=True))
                if base_info is not None and base_info.type == pafs.FileType.Directory
                else []
            )
        else:
            info = fs.get_file_info(loc.path)
            if info.type == pafs.FileType.File:
                infos = [info]
            elif info.type == pafs.FileType.Directory:
                infos = fs.get_file_info(pafs.FileSelector(loc.path, recursive=True))
                infos = [
                    i
                    for i in infos
                    if hidden or not any(p.startswith((".", "_")) for p in _rel(loc.path, i.path))
                ]
            else:
                if loc.scheme != "file" and _bucket_exists(loc, what) is False:
                    raise InputError(f"{what}: bucket {loc.bucket_uri} does not exist")
                raise InputError(f"{what}: no such file or folder {loc.uri}")
    files = [i for i in infos if i.type == pafs.FileType.File]
    if pattern is not None:
        depth = pattern.count("/")
        files = [
            i for i in files if i.path.count("/") == depth and fnmatch.fnmatchcase(i.path, pattern)
        ]
    if suffixes:
        files = [i for i in files if i.path.endswith(suffixes)]
    if not files:
        if pattern is not None:
            raise InputError(f"{what}: no files match {loc.uri}")
        raise InputError(f"{what}: no files under {loc.uri} (empty folder or prefix)")
    stats = sorted((_stat_of(loc, i) for i in files), key=lambda s: s.uri)
    if version:
        with ThreadPoolExecutor(8) as pool:
            stats = list(pool.map(lambda s: _with_version(s, what), stats))
    return stats


def _rel(base: str, path: str) -> list[str]:
    return path[len(base) :].strip("/").split("/")


def list_dir(uri: str, what: str) -> tuple[list[str], list[Stat]]:
    """One level under a folder/prefix: (sub-folder names, files). Missing: ([], [])."""
    import pyarrow.fs as pafs

    with errors(what, uri, "list") as loc:
        fs = _fs_for(loc, what)
        info = fs.get_file_info(loc.path)
        if info.type != pafs.FileType.Directory:
            if loc.scheme != "file" and _bucket_exists(loc, what) is False:
                raise InputError(f"{what}: bucket {loc.bucket_uri} does not exist")
            return [], []
        # Object stores: folders are derived from the files under them (pyarrow's GCS listing
        # reports none when not recursive, and its S3 deletes leave empty `a/` markers).
        infos = fs.get_file_info(pafs.FileSelector(loc.path, recursive=loc.scheme != "file"))
    base = loc.path.rstrip("/")
    folders, files = set(), []
    for i in infos:
        rel = i.path[len(base) :].strip("/").split("/")
        if (len(rel) > 1 and i.type == pafs.FileType.File) or (
            loc.scheme == "file" and i.type == pafs.FileType.Directory
        ):
            folders.add(rel[0])
        elif i.type == pafs.FileType.File:
            files.append(_stat_of(loc, i))
    return sorted(folders), sorted(files, key=lambda s: s.uri)


def open_input(uri: str, what: str, seekable: bool = False, buffer_size: int = 1 << 20):
    """Opens a file for reading: a buffered stream, or a random-access file if `seekable`."""
    with errors(what, uri) as loc:
        fs = _fs_for(loc, what)
        if seekable:
            return fs.open_input_file(loc.path)
        return fs.open_input_stream(loc.path, compression=None, buffer_size=buffer_size)


def read_bytes(uri: str, what: str) -> bytes:
    with errors(what, uri) as loc, open_input(loc.uri, what) as fh:
        return fh.read()


def read_text(uri: str, what: str) -> str:
    return read_bytes(uri, what).decode("utf-8")


# --- writing ---------------------------------------------------------------------------------


@contextlib.contextmanager
def open_output(uri: str, what: str) -> Iterator[object]:
    """A writable stream; on an object store the object appears when the block ends."""
    with errors(what, uri, "write") as loc:
        fs = _fs_for(loc, what)
        if loc.scheme == "file":
            os.makedirs(os.path.dirname(loc.key) or ".", exist_ok=True)
        fh = fs.open_output_stream(loc.path, compression=None)  # bytes as given, .gz too
        try:
            yield fh
        except BaseException:
            # pyarrow has no abort: closing completes the object, so take it away again.
            fh.close()
            with contextlib.suppress(OSError):
                fs.delete_file(loc.path)
            raise
        fh.close()


def write_bytes(uri: str, data: bytes, what: str) -> None:
    with open_output(uri, what) as fh:
        fh.write(data)


def write_text(uri: str, text: str, what: str) -> None:
    write_bytes(uri, text.encode("utf-8"), what)


def copy(src: str, dst: str, what: str) -> None:
    """Copies one file within a store: server side on GCS (rewrite) and S3 (CopyObject)."""
    src_loc, dst_loc = parse(src, what), parse(dst, what)
    if (src_loc.scheme, src_loc.bucket) != (dst_loc.scheme, dst_loc.bucket):
        raise ValueError(f"copy within one bucket only: {src} -> {dst}")
    with errors(what, src_loc, "copy"):
        if src_loc.scheme == "file":
            os.makedirs(os.path.dirname(dst_loc.key) or ".", exist_ok=True)
        _fs_for(src_loc, what).copy_file(src_loc.path, dst_loc.path)


def delete(uri: str, what: str, missing_ok: bool = True) -> None:
    with errors(what, uri, "delete") as loc:
        try:
            _fs_for(loc, what).delete_file(loc.path)
        except FileNotFoundError:
            if not missing_ok:
                raise


def delete_tree(uri: str, what: str) -> None:
    """Deletes everything under a folder/prefix; nothing there is fine.

    On GCS object by object (pyarrow's GCS delete_dir fails without a folder-marker object).
    """
    import pyarrow.fs as pafs

    with errors(what, uri, "delete") as loc:
        fs = _fs_for(loc, what)
        if fs.get_file_info(loc.path).type != pafs.FileType.Directory:
            return
        if loc.scheme in ("file", "s3"):
            fs.delete_dir(loc.path)  # on S3: batched DeleteObjects under the prefix
            return
        infos = fs.get_file_info(pafs.FileSelector(loc.path, recursive=True))

        def _delete(path: str) -> None:
            with contextlib.suppress(FileNotFoundError):
                fs.delete_file(path)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(_delete, [i.path for i in infos if i.type == pafs.FileType.File]))


def download(uri: str, local_dir: str, what: str) -> str:
    """Copies a file (into local_dir, same base name) or a folder tree; returns the local path."""
    import pyarrow.fs as pafs

    loc = parse(uri, what)
    fs = _fs_for(loc, what)
    with errors(what, loc):
        info = fs.get_file_info(loc.path)
        os.makedirs(local_dir, exist_ok=True)
        if info.type == pafs.FileType.File:
            target = os.path.join(local_dir, os.path.basename(loc.path))
            pafs.copy_files(loc.path, target, fs, pafs.LocalFileSystem())
            return target
    files = list_files(loc.uri, what, hidden=True)
    with errors(what, loc):
        for s in files:
            src = parse(s.uri, what)
            rel = src.path[len(loc.path) :].lstrip("/")
            target = os.path.join(local_dir, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            pafs.copy_files(src.path, target, fs, pafs.LocalFileSystem())
    log.info("storage: downloaded %s (%d files)", loc.uri, len(files))
    return local_dir


def upload(local: str, uri: str, what: str) -> None:
    """Copies a local file or folder tree to a location, file by file.

    (pyarrow's copy_files would also write folder-marker objects, `a/`, on object stores.)
    """
    local = os.path.abspath(local)
    if os.path.isdir(local):
        pairs = [
            (os.path.join(root, name), join(uri, os.path.relpath(os.path.join(root, name), local)))
            for root, _, names in os.walk(local)
            for name in names
        ]
    else:
        pairs = [(local, uri)]
    for src, dst in sorted(pairs):
        with open(src, "rb") as fh, open_output(dst, what) as out:
            while chunk := fh.read(_CHUNK):
                out.write(chunk)


def create_exclusive(uri: str, data: bytes, what: str) -> bool:
    """Creates a small object only if nothing is there: True if created, False if taken.

    A real compare-and-set: O_EXCL locally, `if_generation_match=0` on GCS (through
    google-cloud-storage, as pyarrow's GCS filesystem sends no preconditions). S3 raises
    NotImplementedError: its conditional put (If-None-Match) is out of pyarrow's reach.
    """
    loc = parse(uri, what)
    if loc.scheme == "file":
        with errors(what, loc, "write"):
            os.makedirs(os.path.dirname(loc.key) or ".", exist_ok=True)
            try:
                fd = os.open(loc.key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        return True
    if loc.scheme != "gs":
        raise NotImplementedError(f"no create-if-absent for {loc.scheme}:// through pyarrow")
    from google.api_core import exceptions
    from google.cloud.storage.retry import DEFAULT_RETRY

    if not os.environ.get("STORAGE_EMULATOR_HOST"):
        _check_google_credentials(loc, what)
    started = time.monotonic()
    try:
        client = _gcs_client(os.environ.get("STORAGE_EMULATOR_HOST", ""))
        blob = client.bucket(loc.bucket).blob(loc.key)
        blob.upload_from_string(
            data, if_generation_match=0, retry=DEFAULT_RETRY.with_timeout(_retry.get())
        )
        return True
    except exceptions.PreconditionFailed:
        return False
    except exceptions.NotFound:
        raise InputError(f"{what}: bucket {loc.bucket_uri} does not exist") from None
    except (exceptions.Forbidden, exceptions.Unauthorized) as err:
        raise InputError(f"{what}: no permission to write {loc.uri} (HTTP {err.code})") from None
    except exceptions.RetryError as err:
        raise InputError(
            f"{what}: cannot reach {_endpoint('gs')} for {loc.bucket_uri} "
            f"({_gave_up(started)}; {type(err.cause).__name__})"
        ) from None


@lru_cache(maxsize=4)
def _gcs_client(emulator: str):
    """A google-cloud-storage client (per emulator endpoint, which the client reads at start)."""
    from google.cloud import storage as gcs

    return gcs.Client()

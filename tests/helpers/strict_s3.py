"""moto's S3 server behind the checks some S3-compatible stores make: `python strict_s3.py PORT`.

Rejects, with 400 and an S3 error document, every upload that carries a trailing checksum
(`Content-Encoding: aws-chunked`, `x-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER`,
`x-amz-trailer`): MinIO and Ceph RGW versions answer the 2025 AWS SDKs' default request
checksums this way (kubeflow/pipelines#13314, milvus-io/milvus#49978). With `--virtual-only`
it also refuses path-style requests (the bucket in the path rather than the host name), as
stores that serve virtual-hosted addressing only do; virtual-hosted requests reach it as
`<bucket>.localhost:PORT`, which the AWS SDK's curl resolves to loopback. Everything else is moto's S3.
"""

import argparse

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


def _error(start_response, status: str, code: str, message: str) -> list[bytes]:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    ).encode()
    start_response(
        status,
        [
            ("Content-Type", "application/xml"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ],
    )
    return [body]


def trailing_checksum(environ: dict) -> bool:
    """Whether a request sends its body aws-chunked with a trailing checksum."""
    sha = environ.get("HTTP_X_AMZ_CONTENT_SHA256", "")
    encoding = environ.get("HTTP_CONTENT_ENCODING", "")
    return (
        sha.startswith("STREAMING-")
        or "HTTP_X_AMZ_TRAILER" in environ
        or "aws-chunked" in encoding.lower()
    )


def _path_style(environ: dict) -> bool:
    """A request naming its bucket in the path, not the host. The tests' own boto3 client
    (setup and checks, path-style over 127.0.0.1) is let through: the code under test talks
    through pyarrow's AWS SDK."""
    host = environ.get("HTTP_HOST", "").rpartition(":")[0] or environ.get("HTTP_HOST", "")
    path = environ.get("PATH_INFO", "/")
    tests_client = "botocore" in environ.get("HTTP_USER_AGENT", "").lower()
    return host in ("127.0.0.1", "localhost") and path != "/" and not tests_client


def strict(app, virtual_only: bool = False):
    """Wraps moto's WSGI app with the checks above."""

    def checked(environ, start_response):
        if trailing_checksum(environ):
            environ["wsgi.input"].read()  # drain it: the client may still be sending
            return _error(
                start_response,
                "400 Bad Request",
                "InvalidArgument",
                "aws-chunked uploads with trailing checksums are not supported",
            )
        if virtual_only and _path_style(environ):
            return _error(
                start_response,
                "403 Forbidden",
                "SecondLevelDomainForbidden",
                "Please use virtual hosted style to access.",
            )
        return app(environ, start_response)

    return checked


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--virtual-only", action="store_true")
    args = parser.parse_args()
    app = strict(DomainDispatcherApplication(create_backend_app), args.virtual_only)
    run_simple("127.0.0.1", args.port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()

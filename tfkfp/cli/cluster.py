"""`tfkfp upload` and `tfkfp submit`: a KFP cluster through kfp.Client."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from typing import Any

from tfkfp.cli.common import UsageError
from tfkfp.cli.pipelines import (
    check_importer_uris,
    check_required,
    compile_pipeline,
    load_pipeline,
    parse_params,
    set_caching,
)

log = logging.getLogger("tfkfp")


def load_package(ref: str, workdir: str, enable_caching: bool | None = None) -> tuple[str, Any]:
    """A compiled pipeline YAML, or a pipeline ref compiled into `workdir`: (path, component).

    A caching override is applied to a copy, so the user's file is never rewritten.
    """
    from kfp import components

    if ref.endswith((".yaml", ".yml")):
        if not os.path.isfile(ref):
            raise UsageError(f"pipeline file: no such file {ref!r}")
        try:
            component = components.load_component_from_file(ref)
        except Exception as err:  # kfp raises several types for a file that is no pipeline
            raise UsageError(
                f"pipeline file: {ref} is not a compiled KFP pipeline ({type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else ''})"
            ) from None
        path = ref
        if enable_caching is not None:
            path = os.path.join(workdir, os.path.basename(ref))
            with open(ref) as src, open(path, "w") as dst:
                dst.write(src.read())
            set_caching(path, enable_caching)
        return path, component
    pipeline = load_pipeline(ref)
    path = compile_pipeline(pipeline, os.path.join(workdir, "pipeline.yaml"), enable_caching)
    return path, pipeline


def _probe(host: str, timeout: float = 5.0) -> None:
    """Fails fast with one line unless the KFP API answers at `host` (kfp itself retries ~30 s).

    KFP's healthz answers a JSON object. An auth proxy in front of it answers 401/403 or
    redirects to a login page: that counts as reachable, kfp then sends the token. Anything else
    (a 404, an HTML page at the healthz route, a server error) is not a usable KFP API.
    """
    import urllib.error
    import urllib.request

    url = host.rstrip("/") + "/apis/v2beta1/healthz"
    expected = (
        "expected the KFP API endpoint, e.g. http://localhost:8080 after `kubectl port-forward "
        "-n kubeflow svc/ml-pipeline-ui 8080:80`"
    )
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            redirected = response.geturl() != url
            body = response.read(65536)
    except urllib.error.HTTPError as err:
        if err.code in (401, 403):
            return  # an auth proxy answered before login: reachable
        raise UsageError(
            f"--host: {host} is not a Kubeflow Pipelines API (GET {url} answered "
            f"{err.code} {err.reason}); {expected}"
        ) from None
    except OSError as err:  # URLError, timeouts and refused connections are all OSError
        reason = getattr(err, "reason", err)
        raise UsageError(
            f"--host: cannot reach Kubeflow Pipelines at {host} ({reason}); {expected}"
        ) from None
    if redirected:
        return  # a login page an auth proxy redirected to: reachable
    try:
        is_kfp = isinstance(json.loads(body), dict)
    except ValueError:
        is_kfp = False
    if not is_kfp:
        raise UsageError(
            f"--host: {host} is not a Kubeflow Pipelines API (GET {url} answered "
            f"{body[:40]!r}, not KFP's JSON healthz); {expected}"
        )


def connect(host: str | None, namespace: str | None, existing_token: str | None):
    """A kfp.Client; host and auth come from the flags or, as kfp does, from the environment.

    kfp reads KF_PIPELINES_ENDPOINT when no host is given, and in a cluster pod finds the
    in-cluster service; token flags and KF_PIPELINES_IAP_OAUTH2_CLIENT_ID etc. work as in kfp.
    """
    host = host or os.environ.get("KF_PIPELINES_ENDPOINT")
    if host:
        if not host.startswith(("http://", "https://")):
            raise UsageError(f"--host: expected an http:// or https:// URL, got {host!r}")
        _probe(host)
    elif not os.environ.get("KUBERNETES_SERVICE_HOST"):
        raise UsageError(
            "--host: not given and KF_PIPELINES_ENDPOINT is unset; expected the KFP API URL"
        )
    import kfp

    warnings.filterwarnings("ignore", category=FutureWarning, module="kfp")
    kwargs: dict[str, Any] = {"host": host, "existing_token": existing_token}
    if namespace:
        kwargs["namespace"] = namespace
    try:
        return kfp.Client(**kwargs)
    except TimeoutError as err:
        raise UsageError(f"--host: Kubeflow Pipelines did not answer healthz ({err})") from None


def _api_error(err) -> str:
    """One line from a kfp_server_api.ApiException: status, reason and the server's message."""
    message = ""
    try:
        message = json.loads(err.body or "{}").get("message", "")
    except (ValueError, AttributeError):
        message = str(err.body or "")[:200]
    return f"KFP API {err.status} {err.reason}" + (f": {message}" if message else "")


def upload(
    client, path: str, name: str | None = None, version: str | None = None
) -> dict[str, str]:
    """Uploads a pipeline, or a new version of it when a pipeline of that name exists.

    A new pipeline's first version is named after the pipeline (as KFP does); with `version`
    a version of that name is added to it too.
    """
    from kfp.client.client import _extract_pipeline_yaml

    name = name or _extract_pipeline_yaml(path).pipeline_spec.pipeline_info.name
    if not name.strip():
        raise UsageError("--name: expected a non-empty pipeline name")
    pipeline_id = client.get_pipeline_id(name)
    result = {"pipeline_name": name}
    if pipeline_id is None:
        pipeline_id = client.upload_pipeline(path, pipeline_name=name).pipeline_id
        log.info("uploaded new pipeline %s (%s)", name, pipeline_id)
        if version is None:
            return {**result, "pipeline_id": pipeline_id}
    version = version or f"{name} {time.strftime('%Y-%m-%d %H-%M-%S')}"
    uploaded = client.upload_pipeline_version(path, version, pipeline_id=pipeline_id)
    log.info("uploaded version %r of pipeline %s", version, name)
    return {
        **result,
        "pipeline_id": pipeline_id,
        "version": version,
        "version_id": uploaded.pipeline_version_id,
    }


def submit(
    client,
    path: str,
    arguments: dict[str, Any],
    experiment: str | None = None,
    run_name: str | None = None,
    pipeline_root: str | None = None,
) -> dict[str, str]:
    """Starts a run of a compiled pipeline; returns its id and where the KFP UI shows it."""
    result = client.create_run_from_pipeline_package(
        path,
        arguments=arguments,
        run_name=run_name,
        experiment_name=experiment,
        pipeline_root=pipeline_root,
    )
    url = f"{client._get_url_prefix()}/#/runs/details/{result.run_id}"
    return {"run_id": result.run_id, "url": url}


def add_arguments(name: str, p: argparse.ArgumentParser) -> None:
    """`tfkfp upload` and `tfkfp submit`."""
    p.add_argument(
        "--host", help="KFP API URL (default: $KF_PIPELINES_ENDPOINT, or in-cluster as kfp does)"
    )
    p.add_argument("--namespace", help="Kubernetes namespace (multi-user KFP)")
    p.add_argument("--existing-token", help="bearer token for the KFP API")
    p.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="seconds to wait for the KFP API's answers before giving up (default 120)",
    )
    p.add_argument("file", help="compiled pipeline YAML (or a pipeline name/file to compile)")
    if name == "upload":
        p.description = (
            "Uploads FILE as a new pipeline, or as a new version when a pipeline of that name "
            "exists."
        )
        p.add_argument("--name", help="pipeline name (default: the name in the YAML)")
        p.add_argument("--version", help="version name (default: <name> <timestamp>)")
        return
    p.description = "Starts a run of FILE in an experiment and prints the run's UI link."
    p.add_argument("--experiment", help="experiment name (default: kfp's, 'Default')")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--run-name", help="run name (default: file name and time)")
    p.add_argument("--pipeline-root", help="where the cluster writes artifacts (gs://...)")
    p.add_argument(
        "--enable-caching",
        action=argparse.BooleanOptionalAction,
        help="override every task's caching option for this run (default: as compiled)",
    )


def handle(name: str, args: argparse.Namespace) -> int:
    return command(args)


def command(args: argparse.Namespace) -> int:
    import kfp_server_api
    import urllib3

    with tempfile.TemporaryDirectory(prefix="tfkfp-") as workdir:
        caching = getattr(args, "enable_caching", None)
        path, pipeline = load_package(args.file, workdir, caching)
        arguments = {}
        if args.command == "submit":
            arguments = parse_params(pipeline, args.param)
            check_required(pipeline, arguments)
            check_importer_uris(path, arguments)
        client = connect(args.host, args.namespace, args.existing_token)
        try:
            if args.command == "upload":
                result = _bounded(args, lambda: upload(client, path, args.name, args.version))
            else:
                result = _bounded(
                    args,
                    lambda: submit(
                        client, path, arguments, args.experiment, args.run_name, args.pipeline_root
                    ),
                )
        except kfp_server_api.ApiException as err:
            print(f"tfkfp: error: {_api_error(err)}", file=sys.stderr)
            return 1
        except urllib3.exceptions.HTTPError as err:
            print(
                f"tfkfp: error: KFP API unreachable during {args.command}: {err}", file=sys.stderr
            )
            return 1
        except TimeoutError as err:
            print(f"tfkfp: error: {err}", file=sys.stderr)
            return 1
    for key, value in result.items():
        print(f"{key}: {value}")
    return 0


def _bounded(args: argparse.Namespace, call):
    """`call()` with at most --timeout seconds for the KFP API's answers.

    kfp's REST client waits forever for a server that took the request and never answers (its
    urllib3 calls pass no timeout), so the call runs in a daemon thread the process can leave.
    Raises TimeoutError naming the host and the request that got no answer.
    """
    import threading

    from urllib3 import connectionpool

    requests: list[str] = []
    original = connectionpool.HTTPConnectionPool.urlopen

    def urlopen(pool, method, url, *rest, **kwargs):
        requests.append(f"{method} {pool.scheme}://{pool.host}:{pool.port}{url.split('?')[0]}")
        return original(pool, method, url, *rest, **kwargs)

    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["result"] = call()
        except BaseException as err:  # handed to the main thread as is
            outcome["error"] = err

    connectionpool.HTTPConnectionPool.urlopen = urlopen
    try:
        worker = threading.Thread(target=work, name=f"tfkfp-{args.command}", daemon=True)
        worker.start()
        worker.join(args.timeout)
    finally:
        connectionpool.HTTPConnectionPool.urlopen = original
    if worker.is_alive():
        waiting = requests[-1] if requests else "its API"
        raise TimeoutError(
            f"{args.command}: the KFP API at {args.host or 'the configured host'} did not answer "
            f"{waiting} within {args.timeout:g} s (--timeout); its health check had answered"
        )
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]

from kfp import dsl

from tfkfp.components.images import CPU_IMAGE

# The TFX component this stage stands in for (the docs' stage tables).
TFX = "input fingerprinting of ExampleGen"


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def fingerprint(data_uri: str) -> str:
    """Names, sizes and versions of the files at data_uri, hashed: feeds ingest's cache key.

    Compile it with caching off (`.set_caching_options(False)`): it must look at the data on
    every run, so that unchanged data lets ingest and what follows come from cache and changed
    data reruns them.

    Args:
        data_uri: A file, folder or glob (local, /gcs/, /s3/, /minio/, gs:// or s3://).

    Returns:
        `sha256:<hex>` of the listing; no file content is read.
    """
    from tfkfp.containers import fingerprint as stage
    from tfkfp.containers.runtime import entrypoint

    return entrypoint(stage.run, data_uri=data_uri).fingerprint

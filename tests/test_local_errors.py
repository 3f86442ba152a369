"""A local run whose stage fails with its one-line error ends with that line, not only kfp's."""

import os
import subprocess
import textwrap

from tests.helpers import run_cli

PIPELINE = textwrap.dedent(
    """
    from kfp import dsl
    from kfp.dsl import Artifact, Model

    from tfkfp.components import pusher


    @dsl.pipeline(name="push-only")
    def push_only(model_uri: str, blessing_uri: str, destination: str, push: bool = True):
        model = dsl.importer(artifact_uri=model_uri, artifact_class=Model)
        blessing = dsl.importer(artifact_uri=blessing_uri, artifact_class=Artifact)
        with dsl.If(push == True):  # noqa: E712 (a KFP condition, compiled to CEL)
            pusher(model=model.output, blessing=blessing.output, destination=destination)
    """
)


def test_a_read_only_push_destination_ends_the_run_with_the_pushers_line(tmp_path, small_fs):
    model = tmp_path / "model"
    (model / "variables").mkdir(parents=True)
    (model / "saved_model.pb").write_bytes(os.urandom(1000))
    (model / "variables" / "variables.index").write_bytes(os.urandom(100))
    blessing = tmp_path / "blessing"
    blessing.mkdir()
    (blessing / "BLESSED").touch()
    (tmp_path / "push_only.py").write_text(PIPELINE)
    dest = small_fs.path / "serving"
    dest.mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs.path)], check=True)

    proc = run_cli(
        "run", f"{tmp_path / 'push_only.py'}:push_only", "--local",
        "--param", f"model_uri={model}", "--param", f"blessing_uri={blessing}",
        "--param", f"destination={dest}",
        cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last == (
        f"tfkfp: error: pusher: destination: cannot write to {dest} (Read-only file system)"
    ), proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr

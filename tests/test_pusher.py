import json
import os

import pytest
from tfkfp.containers import pusher
from tfkfp.containers.runtime import InputError


def _blessing(tmp_path, blessed: bool) -> str:
    path = tmp_path / ("blessed" if blessed else "not_blessed")
    path.mkdir()
    (path / ("BLESSED" if blessed else "NOT_BLESSED")).touch()
    return str(path)


def test_push_local_versioned(tmp_path, trained):
    dest = tmp_path / "serving"
    result = pusher.run(trained.model, _blessing(tmp_path, True), str(dest))
    assert result["pushed"] is True
    version_dir = dest / str(result["version"])
    assert (version_dir / "saved_model.pb").is_file()
    assert (
        json.loads((version_dir / pusher.MARKER).read_text())["content_hash"]
        == result["content_hash"]
    )
    assert [p.name for p in dest.iterdir()] == [str(result["version"])]  # no staging left
    assert pusher.latest_complete(str(dest)) == str(version_dir)


def test_same_model_is_not_pushed_twice(tmp_path, trained):
    dest = str(tmp_path / "serving")
    blessing = _blessing(tmp_path, True)
    first = pusher.run(trained.model, blessing, dest)
    second = pusher.run(trained.model, blessing, dest)
    assert second["version"] == first["version"] and len(os.listdir(dest)) == 1


def test_versions_strictly_increase(tmp_path, trained):
    dest = tmp_path / "serving"
    (dest / "99999999999").mkdir(parents=True)  # a version from the future, incomplete
    result = pusher.run(trained.model, _blessing(tmp_path, True), str(dest))
    assert result["version"] == 100000000000


def test_not_blessed_records_and_skips(tmp_path, trained):
    dest = tmp_path / "serving"
    result = pusher.run(trained.model, _blessing(tmp_path, False), str(dest))
    assert result["pushed"] is False and not dest.exists()


def test_unwritable_destination(tmp_path, trained):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(InputError, match="destination: cannot write"):
        pusher.run(trained.model, _blessing(tmp_path, True), str(blocker / "serving"))


def test_model_without_saved_model(tmp_path):
    with pytest.raises(InputError, match="no SavedModel"):
        pusher.run(str(tmp_path), _blessing(tmp_path, True), str(tmp_path / "serving"))


def test_missing_blessing(tmp_path, trained):
    with pytest.raises(InputError, match="blessing: no BLESSED"):
        pusher.run(trained.model, str(tmp_path), str(tmp_path / "serving"))

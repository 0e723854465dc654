"""A store filled by the product as it was before fer/ was laid out by the flow (flat modules: fer/faces.py,
fer/weights.py, fer/tracking.py ...) keeps serving after the upgrade: the demo serves its production version, and
the photo model it registered answers photos in a new process (it carries its own copy of the code it was logged
with). The old code is taken from this repository's history (`git archive`); a clone without it skips."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile

import pytest

from tests.conftest import PHOTOS, ROOT, need_shared

pytestmark = pytest.mark.slow

BEFORE_THE_MOVE = "5e66d2c"  # main before the layout of fer/ changed (the flat modules, one bundled model)


def old_product(dest) -> None:
    try:
        tar = subprocess.run(
            ["git", "-C", str(ROOT), "archive", BEFORE_THE_MOVE, "fer", "registry"],
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"this clone does not hold commit {BEFORE_THE_MOVE} (a shallow clone?): no old code to compare")
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        t.extractall(dest, filter="data")


def test_a_store_made_before_the_move_keeps_serving(tmp_path, migrated_db):
    from demo.results import predict
    from tests.test_demo import start_server

    photo = need_shared(PHOTOS) / "astronaut.png"
    old = tmp_path / "old-product"
    old_product(old)
    assert (old / "fer" / "tracking.py").exists() and not (old / "fer" / "inference").exists()
    shutil.copy(migrated_db, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # what the old `make demo` did on its first start: the bundled model registered as version 1, in production
    env = {**os.environ, "PYTHONPATH": str(old), "MLFLOW_TRACKING_URI": uri, "OMP_NUM_THREADS": "1"}
    code = "from registry import Registry; print(Registry().bootstrap().uri)"
    made = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr[-3000:]
    assert made.stdout.strip().endswith("fer-emotion/1")

    # today's demo serves that version
    server = start_server(uri, tmp_path, poll_seconds=0)
    try:
        status = server.status()
        assert (status["source"], status["version"], status["registry_problem"]) == ("registry", 1, ""), status
        (tmp_path / "astronaut.png").write_bytes(photo.read_bytes())
        out = predict(server, tmp_path / "astronaut.png")
        assert out["error"] is None and len(out["faces"]) == 1
        assert len(out["faces"][0]["probabilities"]) == 7  # the old bundled model: FER2013's seven emotions
    finally:
        server.close()

    # and its photo model answers in a new process of today's product, with the code it was logged with
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": uri, "OMP_NUM_THREADS": "1"}
    env["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"
    code = (
        "import json, sys, mlflow, pandas as pd\n"
        "m = mlflow.pyfunc.load_model('models:/fer-emotion@production')\n"
        f"out = m.predict(pd.DataFrame({{'image': [open({str(photo)!r}, 'rb').read()]}}))\n"
        "print(json.dumps({'faces': out['faces'][0], 'error': out['error'][0]}, default=str))\n"
    )
    served = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert served.returncode == 0, served.stderr[-3000:]
    answer = json.loads(served.stdout.strip().splitlines()[-1])
    faces = json.loads(answer["faces"]) if isinstance(answer["faces"], str) else answer["faces"]
    assert answer["error"] == "" and len(faces) == 1 and faces[0]["box"] == out["faces"][0]["box"]

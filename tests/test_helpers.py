"""Helper processes for folders of photos (fer/inference/helpers.py): the same table as the lanes give, the main
process without torch, and nothing lost when a helper ends."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fer import usable_cores
from fer.inference.images import read_image
from tests.conftest import ROOT
from tests.test_batch import folder, photos_only, read_csv, same_table, weights  # noqa: F401 (fixtures)

pytestmark = pytest.mark.skipif(usable_cores() < 2, reason="helper processes start on two cores or more")

# `fer predict` in a fresh Python, helpers taken from the first photo on (a folder of hundreds, made small): prints
# how many photos the helpers analysed and whether this process imported torch
RUN = """
import sys; del sys.path[0]  # as the `fer` script starts: not from the working folder
import json, os
from fer.inference import helpers
helpers.HELPER_MIN_PHOTOS = int(os.environ.get("HELPER_MIN_PHOTOS", "1"))
submit, sent, start, started = helpers.Helpers.submit, [], helpers.Helpers.__init__, []
def counted(self, path):
    future = submit(self, path)
    sent.extend([path] if future is not None else [])
    return future
def starting(self, count, *args, **kwargs):
    started.append(count)
    start(self, count, *args, **kwargs)
helpers.Helpers.submit, helpers.Helpers.__init__ = counted, starting
from fer.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "by_helpers": len(sent), "started": sum(started), "torch": "torch" in sys.modules}))
"""


def predict(*args: str, helpers: bool, min_photos: int = 1, cwd: Path = ROOT) -> dict:
    """`fer predict ARGS` in a fresh Python: its exit code, photos analysed by helpers, helpers started, whether it
    imported torch, and its stderr. Helpers from `min_photos` photos on."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # as a user's shell has it
    if not helpers:
        env["OMP_NUM_THREADS"] = "1"  # a thread count of the user's own: no helpers, one lane
    env["PYTHONPATH"], env["HELPER_MIN_PHOTOS"] = str(ROOT), str(min_photos)
    cmd = [sys.executable, "-c", RUN, "predict", *args, "--progress", "false"]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "stderr": proc.stderr}


def test_helpers_give_the_lanes_table_and_the_main_process_loads_no_model(folder, weights, tmp_path):  # noqa: F811
    photos = photos_only(folder, tmp_path)
    n = len([p for p in photos.rglob("*") if p.is_file() and not p.name.startswith(".")]) - 1  # notes.txt
    lanes, helped = tmp_path / "lanes.csv", tmp_path / "helpers.csv"
    alone = predict(str(photos), "--model", str(weights), "--csv", str(lanes), helpers=False)
    got = predict(str(photos), "--model", str(weights), "--csv", str(helped), helpers=True)
    assert alone["by_helpers"] == 0 and alone["code"] == got["code"] == 2  # the broken photo
    assert got["by_helpers"] == n and not got["torch"]  # every photo in a helper; no torch here
    same_table(helped, lanes)
    # resumed with one photo left (the last file is taken again): sized by what is left, no helper for it
    again = predict(str(photos), "--model", str(weights), "--csv", str(helped), "--resume", helpers=True, min_photos=2)
    assert again["started"] == 0 and "1 to go" in again["stderr"], again
    same_table(helped, lanes)
    assert next(r for r in read_csv(helped) if r["error"])["error"].startswith("broken.jpg: corrupt image")

    # a clip and annotated copies need the model here too: loaded when the clip comes, the photos read again
    lanes, helped = tmp_path / "lanes-all.csv", tmp_path / "helpers-all.csv"
    common = ["--model", str(weights), "--fps", "5"]
    predict(str(folder), *common, "--csv", str(lanes), "--annotate", str(tmp_path / "a"), helpers=False)
    got = predict(str(folder), *common, "--csv", str(helped), "--annotate", str(tmp_path / "b"), helpers=True)
    assert got["by_helpers"] == n and got["torch"]
    same_table(helped, lanes)
    drawn = sorted(p.name for p in (tmp_path / "b").iterdir())
    assert drawn == sorted(p.name for p in (tmp_path / "a").iterdir()) and len(drawn) >= n - 1  # all but broken.jpg


def test_a_helper_that_ends_leaves_no_photo_behind(weights):  # noqa: F811
    """The photo a helper was analysing when it ended is reported with an error (it may be why); the photos queued
    behind it are analysed by the main process; the run ends with no helper process left."""
    from fer.inference.faces import FacePipeline
    from fer.inference.helpers import Helpers
    from fer.inference.results import analyze_file
    from fer.inference.weights import load_model

    photos = [str(p) for p in sorted((ROOT.parent / "shared" / "data" / "photos").glob("*.png"))[:3]]
    if len(photos) < 3:
        pytest.skip("needs ../shared/data/photos")
    pipeline = FacePipeline(load_model(str(weights))[0])
    helpers = Helpers(1, str(weights), {"min_face": 40, "face_mode": "auto"}, lambda p: analyze_file(pipeline, p))
    try:
        assert helpers.wait_ready() and helpers.classes == pipeline.classes
        first = helpers.submit(photos[0]).result(timeout=120)  # a helper's answer: the pipeline's own
        expected = pipeline.analyze(read_image(photos[0]))
        assert first.error is None and first.analysis.to_dict() == expected.to_dict()

        process = helpers._helpers[0].process
        process.send_signal(signal.SIGSTOP)  # it holds the three photos, answering none
        futures = [helpers.submit(p) for p in photos]
        process.kill()
        results = [f.result(timeout=120) for f in futures]
        assert helpers.alive == 0
    finally:
        helpers.close()
    assert process.poll() is not None
    assert results[0].analysis is None and results[0].error == (
        f"{Path(photos[0]).name}: the helper process analysing it ended (exit code {-signal.SIGKILL})"
    )
    for path, result in zip(photos[1:], results[1:]):
        assert result.error is None and result.analysis.to_dict() == pipeline.analyze(read_image(path)).to_dict()


def test_a_helper_that_ends_never_leaves_the_run_waiting(weights):  # noqa: F811
    """Whatever way a helper ends, every photo it held gets an answer: the main process analysing one itself may
    fail (its error is raised to the caller, as from a lane), and a helper stopped by Ctrl-C has its photos
    reported as not analysed, without the main process loading the model."""
    from fer.inference.helpers import Helpers

    photos = [str(p) for p in sorted((ROOT.parent / "shared" / "data" / "photos").glob("*.png"))[:4]]
    if len(photos) < 4:
        pytest.skip("needs ../shared/data/photos")
    asked = []

    def fallback(path):
        asked.append(path)
        raise RuntimeError("the model cannot be loaded here")

    stops = [signal.SIGKILL]
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # not in a shell's background job: its helpers, as
        stops.append(signal.SIGINT)  # this process, would ignore Ctrl-C (and answer every photo)
    for stop in stops:
        helpers = Helpers(1, str(weights), {"min_face": 40, "face_mode": "auto"}, fallback)
        try:
            assert helpers.wait_ready()
            process = helpers._helpers[0].process
            process.send_signal(signal.SIGSTOP)
            futures = [helpers.submit(p) for p in photos]
            process.send_signal(stop)
            process.send_signal(signal.SIGCONT)
            first = futures[0].result(timeout=60)
            if stop == signal.SIGKILL:
                assert first.error.endswith(f"ended (exit code {-signal.SIGKILL})")
                for future in futures[1:]:
                    with pytest.raises(RuntimeError, match="cannot be loaded"):
                        future.result(timeout=60)
                assert asked == photos[1:]
            else:
                results = [first] + [f.result(timeout=60) for f in futures[1:]]
                assert process.wait(timeout=60) in (130, -signal.SIGINT)
                # the first photos may be answered before the interrupt takes effect (their paths were already in
                # the helper's pipe when it woke); the photos not answered are reported as interrupted
                interrupted = [r for r in results if r.analysis is None]
                assert interrupted and interrupted[-1] is results[-1], results
                for result in interrupted:
                    assert result.error == f"{Path(result.path).name}: interrupted before it was analysed"
                assert asked == photos[1:]  # none analysed here: from the first helper only
        finally:
            helpers.close()


def test_cores_are_counted_as_a_container_allows(tmp_path, monkeypatch):
    """A container's CPU quota (Docker's --cpus, a hosted Space) bounds the helpers and lanes, not the host's cores
    that os.cpu_count() sees: one helper per core of the host would each load a model to share one core."""
    import fer
    from fer.inference.batch import lanes_and_threads
    from fer.inference.helpers import helpers_for

    mine = len(os.sched_getaffinity(0))
    v2, quota, period = tmp_path / "cpu.max", tmp_path / "quota_us", tmp_path / "period_us"
    files = ((str(v2),), (str(quota), str(period)))
    assert fer.usable_cores(files) == mine  # no quota file: the cores this process may run on
    for text, cores in (("max 100000\n", mine), ("150000 100000\n", min(mine, 2)), ("100000 100000\n", 1)):
        v2.write_text(text)
        assert fer.usable_cores(files) == cores, text
    v2.unlink()
    quota.write_text("-1\n")
    period.write_text("100000\n")
    assert fer.usable_cores(files) == mine  # cgroup v1, no quota
    quota.write_text("50000\n")
    assert fer.usable_cores(files) == 1

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(fer, "CPU_QUOTA_FILES", files)
    assert helpers_for(668) == 0 and lanes_and_threads(668)[0] == 1  # one core allowed: one lane, no helper
    quota.write_text("-1\n")
    assert helpers_for(668) == min(mine, 8)


def test_a_model_the_helpers_cannot_load_is_said_once_by_this_process(tmp_path):
    """Helpers that cannot load the model end and say why (kept in `failure`); the run falls to this process,
    whose own load names the problem to the user."""
    from fer.inference.helpers import Helpers

    bad = tmp_path / "weights.pt"
    bad.write_bytes(b"not a model")
    helpers = Helpers(2, str(bad), {"min_face": 40, "face_mode": "auto"}, lambda p: None)
    try:
        assert helpers.count == 2 and not helpers.wait_ready() and helpers.alive == 0
        assert helpers.failure.startswith("ModelLoadError: ") and "weights.pt" in helpers.failure
    finally:
        helpers.close()
    for photo in sorted((ROOT.parent / "shared" / "data" / "photos").glob("*.png"))[:2]:
        shutil.copy(photo, tmp_path / photo.name)
    got = predict(str(tmp_path), "--model", str(bad), helpers=True)
    assert got["started"] == usable_cores() and got["code"] == 2
    assert got["stderr"].count("weights.pt") == 1 and got["stderr"].startswith("error: "), got["stderr"]


def test_a_registered_models_alias_stage_or_latest_is_pinned_to_its_version(mlflow_store, tmp_path):
    """The helpers load one after another: an alias, a stage or `latest` is read once, as the version it names
    then, so that a promotion during the run cannot split its table between two models; without torch."""
    from tests.test_registry import fake_versions

    client = fake_versions(mlflow_store, tmp_path, 3)
    client.set_registered_model_alias("fer-emotion", "production", "2")
    client.transition_model_version_stage("fer-emotion", "1", "Staging")
    specs = [
        "models:/fer-emotion@production",
        "models:/fer-emotion/latest",
        "models:/fer-emotion/Staging",
        "models:/fer-emotion/3",
        "models:/fer-emotion@nobody",
        "bundled",
    ]
    code = (
        "import json, sys; from fer.inference.helpers import pin_model; "
        f"print(json.dumps([[pin_model(s) for s in {specs!r}], 'torch' in sys.modules]))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    pinned, torch_imported = json.loads(proc.stdout.strip().splitlines()[-1])
    assert pinned == [
        "models:/fer-emotion/2",
        "models:/fer-emotion/3",
        "models:/fer-emotion/1",
        "models:/fer-emotion/3",
        "models:/fer-emotion@nobody",  # no such alias: loading it says so
        "bundled",
    ]
    assert not torch_imported


def test_a_module_beside_the_photos_does_not_stand_in_for_the_helpers_own(tmp_path):
    """fer predict run in a folder holding a json.py (a researcher's script beside their photos): the helpers
    import the real json, as the `fer` script does, and analyse every photo."""
    photos = sorted((ROOT.parent / "shared" / "data" / "photos").glob("*.png"))[:2]
    if len(photos) < 2:
        pytest.skip("needs ../shared/data/photos")
    for photo in photos:
        shutil.copy(photo, tmp_path / photo.name)
    (tmp_path / "json.py").write_text('raise SystemExit("the json.py beside the photos was imported")\n')
    got = predict(".", helpers=True, cwd=tmp_path)
    assert got["code"] == 0 and got["by_helpers"] == 2, got
    assert "beside the photos" not in got["stderr"] and "json.py" not in got["stderr"]

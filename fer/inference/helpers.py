"""Helper processes for folders of photos: one Python per core, each analysing whole photos, the main process only
handing out paths and writing the answers in order.

Two lanes (threads) in one process read 105-128 photos/s on realphotos-dev, a 2-core AMD EPYC, where two
processes of one lane each read 149-161: about a quarter of a photo's 14 ms is Python, and the lanes take turns
at the interpreter's lock for it. A lane of the main process beside one helper gained nothing end to end: the
main process's own Python (its outputs, the answers coming back) slowed its lane, and the photos come out in
order, so the helper waited for it. So `fer predict` and `fer.inference.batch.predict`, given at least
HELPER_MIN_PHOTOS photos, start a helper per core as soon as the files are listed and load no model themselves
(nor torch) unless a clip, an annotated copy or a helper that ended needs one.

A helper is a Python running `fer.inference.helpers.main`, talking JSON lines over its stdin and stdout: a line of
settings, then one path per line in; a line saying it is ready (with the model's classes), then one photo's result
per line out, in order. Its stdout is the protocol alone: whatever a library prints goes to stderr. A helper that
ends before answering has the photo it was analysing reported with an error (that photo may be why), and the photos
queued behind it are analysed by the main process (unless it was interrupted, Ctrl-C, when they are reported as not
analysed: the main process is stopping too).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import warnings
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

from fer import usable_cores

HELPER_MIN_PHOTOS = 200  # a helper starts in about 2 s, the time one lane takes for about 140 photos
MAX_HELPERS = 8  # each holds its own model and detector (about 300 MB)
AHEAD = 4  # photos sent to a helper before its oldest answer comes back


def helpers_for(photos: int) -> int:
    """How many helpers a run of `photos` starts: one per core (at most MAX_HELPERS); none for fewer than
    HELPER_MIN_PHOTOS photos, on one core, or where the user set OMP_NUM_THREADS (their own thread budget)."""
    cores = usable_cores()
    if photos < HELPER_MIN_PHOTOS or cores < 2 or "OMP_NUM_THREADS" in os.environ:
        return 0
    return min(cores, MAX_HELPERS)


def pin_model(spec: str) -> str:
    """`spec` with a registered model's alias, stage or `latest` resolved to the version it names now
    (models:/NAME@ALIAS, models:/NAME/Production, models:/NAME/latest -> models:/NAME/N), so that the helpers,
    loading it one after another, load the same version; anything else as it is. Imports MLflow, not torch."""
    if not spec.startswith("models:/"):
        return spec
    rest = spec[len("models:/") :]
    name, sep, alias = rest.partition("@")
    if not sep:  # models:/NAME/STAGE, models:/NAME/latest or models:/NAME/N
        name, _, stage = rest.rpartition("/")
    if not name or (not sep and stage.isdigit()):
        return spec  # a version already, or not a registry URI: load_model reports what is wrong with it
    import mlflow

    client = mlflow.MlflowClient()
    try:
        if sep:
            version = client.get_model_version_by_alias(name, alias).version
        elif stage.lower() == "latest":
            version = max(int(v.version) for v in client.search_model_versions(f"name = '{name}'"))
        else:
            with warnings.catch_warnings():  # stages are deprecated in MLflow 3, and still served
                warnings.simplefilter("ignore")
                version = client.get_latest_versions(name, stages=[stage])[0].version
    except Exception:  # noqa: BLE001 - no such model, alias or stage: load_model reports it
        return spec
    return f"models:/{name}/{version}"


def threads_each(count: int) -> int:
    """Torch threads for each of `count` helpers: the cores shared out."""
    return max(1, usable_cores() // count)


# a helper's start: the working folder taken off the import path first (`python -m` would put it there, and a
# json.py or numpy.py of the user's beside their photos would then stand in for the real one)
BOOT = "import sys; del sys.path[0]; from fer.inference.helpers import main; sys.exit(main())"


class _Helper:
    def __init__(self, settings: str, threads: int):
        root = str(Path(__file__).resolve().parents[2])  # the folder holding the `fer` package
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(
            [sys.executable, "-c", BOOT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )
        self.ready = False
        self.ended = False
        self.pending: deque[tuple[str, Future]] = deque()  # sent, not answered: answers come back in this order
        self.send(settings)

    def send(self, line: str) -> None:
        try:
            self.process.stdin.write(line)
            self.process.stdin.flush()
        except (OSError, ValueError):  # it ended: its reader hands back what it had
            pass


class Helpers:
    """`count` helper processes, each loading `model` (a `--model` spec) into a FacePipeline of `settings` (its
    keyword arguments) on `threads` torch threads; photos go to them with `submit`. `fallback(path)` analyses a
    photo in this process, where a helper ended before answering."""

    def __init__(self, count: int, model: str, settings: dict, fallback: Callable[[str], object], threads: int = 1):
        self.classes: tuple[str, ...] | None = None  # the model's, from the first helper ready
        self.failure: str | None = None  # why a helper could not load the model, where one could not
        self._fallback = fallback
        self._closing = False
        self._changed = threading.Condition()  # a helper became ready or ended
        line = json.dumps({"model": model, **settings}) + "\n"
        self._helpers = []
        for _ in range(count):
            try:
                self._helpers.append(_Helper(line, threads))
            except OSError as e:  # no process to be had (a limit on processes or files): fewer helpers, or none
                warnings.warn(f"could not start a helper process ({e}); {len(self._helpers)} started", stacklevel=2)
                break
        self.count = len(self._helpers)
        self._readers = [
            threading.Thread(target=self._read, args=(h,), name="fer-helper-reader", daemon=True) for h in self._helpers
        ]
        for reader in self._readers:
            reader.start()

    @property
    def alive(self) -> int:
        return sum(not h.ended for h in self._helpers)

    def wait_ready(self) -> bool:
        """Block until a helper is ready (True) or every one has ended (False)."""
        with self._changed:
            self._changed.wait_for(lambda: any(h.ready and not h.ended for h in self._helpers) or not self.alive)
            return self.alive > 0

    def submit(self, path: str) -> Future | None:
        """A Future of the photo's PhotoResult from the ready helper with the fewest photos in hand; None where
        every ready helper has AHEAD (or none is ready yet)."""
        with self._changed:
            free = [h for h in self._helpers if h.ready and not h.ended and len(h.pending) < AHEAD]
            if not free:
                return None
            helper = min(free, key=lambda h: len(h.pending))
            future: Future = Future()
            helper.pending.append((path, future))
        helper.send(json.dumps({"path": path}) + "\n")
        return future

    def _read(self, helper: _Helper) -> None:
        from fer.inference.results import PhotoResult

        try:
            for line in helper.process.stdout:
                message = json.loads(line)
                if "failed" in message:  # it could not load the model, and ends
                    with self._changed:
                        self.failure = self.failure or message["failed"]
                    continue
                if "ready" in message:
                    with self._changed:
                        self.classes = self.classes or tuple(message["classes"])
                        helper.ready = True
                        self._changed.notify_all()
                    continue
                with self._changed:
                    path, future = helper.pending.popleft()
                future.set_result(PhotoResult(path, _analysis(message["analysis"]), message["error"]))
        except Exception:  # noqa: BLE001 - a broken pipe, or a line that is not an answer: the helper is ended
            helper.process.kill()  # (a no-op where it has ended already)
        code = helper.process.wait()
        with self._changed:
            helper.ended = True
            lost = list(helper.pending)
            helper.pending.clear()
            self._changed.notify_all()
        interrupted = code in (130, -signal.SIGINT)  # Ctrl-C: the main process is stopping too
        for i, (path, future) in enumerate(lost):
            if self._closing:  # the run is over: nothing waits for these
                future.cancel()
            elif interrupted:
                future.set_result(PhotoResult(path, None, f"{Path(path).name}: interrupted before it was analysed"))
            elif i == 0:  # the photo it was analysing: maybe the cause, so not tried again here
                error = f"{Path(path).name}: the helper process analysing it ended (exit code {code})"
                future.set_result(PhotoResult(path, None, error))
            else:
                try:
                    future.set_result(self._fallback(path))
                except Exception as e:  # noqa: BLE001 - the caller waiting on it gets the error, as from a lane
                    future.set_exception(e)

    def close(self) -> None:
        """End the helpers: no more photos (EOF on their stdin), a second to finish, then killed."""
        self._closing = True
        for helper in self._helpers:
            try:
                helper.process.stdin.close()
            except OSError:
                pass
        for helper in self._helpers:
            try:
                helper.process.wait(timeout=1)
            except subprocess.TimeoutExpired:
                helper.process.kill()
                helper.process.wait()
        for reader in self._readers:
            reader.join(timeout=1)
        for helper in self._helpers:
            helper.process.stdout.close()


def _analysis(data: dict | None):
    """A helper's Analysis.to_dict() back as an Analysis (JSON keeps every float exactly)."""
    from fer.inference.results import Analysis, Face

    if data is None:
        return None
    return Analysis(**{**data, "faces": [Face(**f) for f in data["faces"]]})


def _serve(stdin, out) -> None:
    """A helper's life: read the settings, load, say so, answer each path."""
    import torch

    from fer.inference.faces import FacePipeline
    from fer.inference.memory import keep_freed_memory
    from fer.inference.results import analyze_file
    from fer.inference.weights import load_model

    keep_freed_memory()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    line = stdin.readline()
    if not line:
        return  # the run ended before this helper started
    settings = json.loads(line)
    try:
        model, _ = load_model(settings.pop("model"))
        pipeline = FacePipeline(model, **settings)
    except Exception as e:  # noqa: BLE001 - the main process, left without helpers, loads it and reports the problem
        out.write(json.dumps({"failed": f"{type(e).__name__}: {e}"}) + "\n")
        return
    out.write(json.dumps({"ready": True, "classes": list(pipeline.classes)}) + "\n")
    out.flush()
    for line in stdin:
        result = analyze_file(pipeline, json.loads(line)["path"])
        analysis = result.analysis.to_dict() if result.analysis is not None else None
        out.write(json.dumps({"analysis": analysis, "error": result.error}) + "\n")
        out.flush()


def main() -> int:
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")  # the protocol's own copy of stdout
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # anything else printed goes to stderr
    try:
        _serve(sys.stdin, out)
        out.flush()
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group: the main process reports it
        os._exit(130)
    except BrokenPipeError:  # the main process went away
        pass
    os._exit(0)  # nothing left to write: the interpreter's teardown (torch's, half a second) is skipped


if __name__ == "__main__":
    sys.exit(main())

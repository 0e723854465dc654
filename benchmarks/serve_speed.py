"""Photos/s of `mlflow models serve` (the registered photo model) beside the pipeline alone and the demo's /predict,
with one client and with many, on the same photo in the same run.

    .venv/bin/python benchmarks/serve_speed.py [--clients 16] [--calls 25] [--workers N] [--photo PATH]

Bootstraps the bundled model into a temporary MLflow store, then measures:

1. the pipeline alone: `demo.results.predict` in this process, no HTTP (the baseline; torch's default threads);
2. `mlflow models serve -m models:/fer-emotion@production --env-manager local --workers N` (N: this machine's
   cores by default, OMP_NUM_THREADS=1 in each worker), one client, then `--clients` clients at once, each
   POSTing the photo as base64 in MLflow's dataframe_split JSON;
3. the demo (`python -m demo`), /predict through gradio_client, one client then `--clients` at once.

Prints p50/p95 latency, photos/s and failed calls for each, and each throughput as a ratio to the pipeline
alone. A benchmark, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.demo_process import free_port, running_demo, running_process  # noqa: E402
from benchmarks.load_predict import load_args_parser, row  # noqa: E402

os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def get_args_parser() -> argparse.ArgumentParser:
    p = load_args_parser(__doc__.splitlines()[0], baseline_calls=20)
    p.add_argument("--workers", type=int, default=os.cpu_count(), help="mlflow models serve workers (default: cores)")
    p.add_argument("--skip-demo", action="store_true", help="leave out the demo's /predict")
    return p


def hammer(name: str, make_call, clients: int, calls: int) -> dict:
    """`clients` threads, each making `calls` calls of its own `make_call()` at once; the row of load_predict."""
    lat, errors, lock, go = [], [], threading.Lock(), threading.Event()

    def worker() -> None:
        call = make_call()
        go.wait()
        for _ in range(calls):
            t = time.perf_counter()
            try:
                error = call()
            except Exception as e:  # noqa: BLE001 - counted, not raised
                error = repr(e)
            with lock:
                (errors.append(str(error)[:200]) if error else lat.append(time.perf_counter() - t))

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for th in threads:
        th.start()
    time.sleep(0.5)  # every client made (gradio_client fetches the API's description first)
    start = time.perf_counter()
    go.set()
    for th in threads:
        th.join(timeout=1800)  # bounded: a stuck server ends the benchmark, not the machine
    r = row(name, lat, time.perf_counter() - start, len(errors))
    if errors:
        print(f"    first error: {errors[0]}")
    return r


@contextmanager
def mlflow_serving(work: Path, store: str, workers: int, startup_s: float = 300):
    """`mlflow models serve` of the production alias on a free loopback port; yields its URL once /ping answers."""
    port = free_port()
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": store,
        "OMP_NUM_THREADS": "1",  # one thread per worker: the workers share the cores
        "PYTHONPATH": str(ROOT),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    cmd = [str(bin_dir / "mlflow"), "models", "serve", "-m", "models:/fer-emotion@production"]
    cmd += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "--workers", str(workers)]
    url = f"http://127.0.0.1:{port}"

    def answers_ping() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2):
                return True
        except OSError:
            return False

    with running_process(cmd, work, "serve.log", answers_ping, env, startup_s):
        yield url


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    from demo.results import predict
    from demo.serving import ModelServer
    from registry import Registry

    photo = Path(args.photo).resolve()
    if not photo.is_file():
        print(f"error: {photo}: no such photo", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="fer-serve-speed-"))
    os.chdir(work)  # the temporary store's artifacts go here, not into the repository
    store = f"sqlite:///{work / 'mlflow.db'}"
    server = ModelServer(Registry(store), poll_seconds=0).start()  # bootstraps the store; the baseline's model
    import torch

    print(f"photo {photo.name}; {os.cpu_count()} cores; pipeline alone on {torch.get_num_threads()} torch threads\n")
    results = {}
    try:
        predict(server, photo)  # warm-up
        results["pipeline"] = hammer(
            "pipeline alone (no HTTP)", lambda: lambda: predict(server, photo)["error"], 1, args.baseline_calls
        )

        body = json.dumps(
            {"dataframe_split": {"columns": ["image"], "data": [[base64.b64encode(photo.read_bytes()).decode()]]}}
        ).encode()

        def rest_call(url: str):
            def call():
                request = urllib.request.Request(
                    f"{url}/invocations", data=body, headers={"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(request, timeout=300) as response:
                    answer = json.loads(response.read())["predictions"][0]
                faces = answer["faces"]  # objects; JSON text from a version logged before issue 38
                faces = json.loads(faces) if isinstance(faces, str) else faces
                return answer["error"] or (None if faces else "no face found")

            return call

        with mlflow_serving(work, store, args.workers) as url:
            label = f"mlflow models serve -w {args.workers}"
            rest_call(url)()  # warm-up: every worker loads the model on start
            results["serve1"] = hammer(f"{label}, 1 client", lambda: rest_call(url), 1, args.baseline_calls)
            results["serveN"] = hammer(
                f"{label}, {args.clients} clients", lambda: rest_call(url), args.clients, args.calls
            )

        if not args.skip_demo:
            from gradio_client import Client, handle_file

            with running_demo(work, {"MLFLOW_TRACKING_URI": store}) as (_, demo_url):

                def demo_call():
                    client = Client(demo_url, verbose=False)
                    return lambda: client.predict(handle_file(str(photo)), api_name="/predict")["error"]

                demo_call()()  # warm-up
                results["demo1"] = hammer("demo /predict, 1 client", demo_call, 1, args.baseline_calls)
                results["demoN"] = hammer(f"demo /predict, {args.clients} clients", demo_call, args.clients, args.calls)
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        server.close()
    base = results["pipeline"]["per_s"]
    print("\nthroughput as a ratio to the pipeline alone:")
    for r in results.values():
        print(f"  {r['name']:<40} {r['per_s']:6.2f} photos/s  x{r['per_s'] / base:.2f}")
    os.chdir(ROOT)
    shutil.rmtree(work, ignore_errors=True)  # kept only when a server did not start (its log is there)
    return 0


if __name__ == "__main__":
    sys.exit(main())

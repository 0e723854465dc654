"""Latency of the demo's /predict under load, against one client and against the pipeline alone, same run.

    .venv/bin/python benchmarks/load_predict.py [--clients 16] [--calls 25] [--photo demo/examples/astronaut.png]

Bootstraps the bundled model into a temporary MLflow store, starts `python -m demo` on it
(127.0.0.1, a free port; a process of its own, so the clients here do not share its
interpreter lock), then measures on the same photo:

1. pipeline alone: `demo.results.predict` in this process, no HTTP, no queue (the baseline);
2. one gradio_client client, calls one after another;
3. `--clients` clients at once, `--calls` calls each (16 × 25 = 400 by default).

Prints p50/p95 latency, throughput and failed calls for each, and the ratios of 2 and 3
to the baseline. A benchmark, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.demo_process import running_demo  # noqa: E402

os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def load_args_parser(description: str, baseline_calls: int) -> argparse.ArgumentParser:
    """The flags every load benchmark takes: clients, calls, one-client calls, the photo sent."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--clients", type=int, default=16, help="concurrent clients (default: 16)")
    p.add_argument("--calls", type=int, default=25, help="calls per concurrent client (default: 25)")
    p.add_argument(
        "--baseline-calls", type=int, default=baseline_calls, help=f"calls of each baseline (default: {baseline_calls})"
    )
    p.add_argument("--photo", default=str(ROOT / "demo" / "examples" / "astronaut.png"), help="image sent each call")
    return p


def get_args_parser() -> argparse.ArgumentParser:
    return load_args_parser(__doc__.splitlines()[0], baseline_calls=10)


def percentile(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def row(name: str, latencies: list[float], wall: float, failed: int) -> dict:
    n = len(latencies)
    r = {
        "name": name,
        "calls": n + failed,
        "failed": failed,
        "p50": percentile(latencies, 0.5),
        "p95": percentile(latencies, 0.95),
        "mean": statistics.fmean(latencies) if latencies else float("nan"),
        "per_s": n / wall if wall > 0 else float("nan"),
    }
    print(
        f"{name:<28} {r['calls']:>5} calls  {failed:>3} failed  p50 {r['p50'] * 1000:7.0f} ms  "
        f"p95 {r['p95'] * 1000:7.0f} ms  {r['per_s']:6.2f} calls/s",
        flush=True,
    )
    return r


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    from demo.serving import ModelServer
    from registry import Registry

    photo = Path(args.photo).resolve()
    if not photo.is_file():
        print(f"error: {photo}: no such photo", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="fer-load-"))
    os.chdir(work)  # the temporary store's artifacts go here, not into the repository
    store = f"sqlite:///{work / 'mlflow.db'}"
    t0 = time.time()
    server = ModelServer(Registry(store), poll_seconds=0).start()  # bootstraps the store; the baseline's model
    try:
        with running_demo(work, {"MLFLOW_TRACKING_URI": store}) as (_, url):
            print(f"serving {server.status()['summary']} on {url} (ready in {time.time() - t0:.0f} s)")
            measure(server, url, photo, args)
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        server.close()
    os.chdir(ROOT)
    shutil.rmtree(work, ignore_errors=True)  # kept only when the demo did not start (its log is there)
    return 0


def measure(server, url: str, photo: Path, args) -> None:
    from gradio_client import Client, handle_file

    from demo.app import default_concurrency
    from demo.results import predict

    print(f"photo {photo.name}; {os.cpu_count()} cores; queue concurrency {default_concurrency()}\n")

    # 1. the pipeline alone
    predict(server, photo)  # warm-up
    lat = []
    start = time.perf_counter()
    for _ in range(args.baseline_calls):
        t = time.perf_counter()
        predict(server, photo)
        lat.append(time.perf_counter() - t)
    base = row("pipeline alone (no HTTP)", lat, time.perf_counter() - start, 0)

    # 2. one client
    client = Client(url, verbose=False)
    client.predict(handle_file(str(photo)), api_name="/predict")  # warm-up
    lat, failed = [], 0
    start = time.perf_counter()
    for _ in range(args.baseline_calls):
        t = time.perf_counter()
        try:
            out = client.predict(handle_file(str(photo)), api_name="/predict")
            failed += out["error"] is not None
            lat.append(time.perf_counter() - t)
        except Exception:  # noqa: BLE001 - counted, not raised
            failed += 1
    one = row("1 client, sequential", lat, time.perf_counter() - start, failed)

    # 3. many clients at once
    clients = [Client(url, verbose=False) for _ in range(args.clients)]
    lat, errors = [], []
    lock = threading.Lock()
    go = threading.Event()

    def worker(c: Client) -> None:
        go.wait()
        for _ in range(args.calls):
            t = time.perf_counter()
            try:
                out = c.predict(handle_file(str(photo)), api_name="/predict")
                ok = out["error"] is None
            except Exception as e:  # noqa: BLE001 - counted, not raised
                ok, out = False, repr(e)
            with lock:
                (lat.append(time.perf_counter() - t) if ok else errors.append(str(out)[:200]))

    threads = [threading.Thread(target=worker, args=(c,), daemon=True) for c in clients]
    for th in threads:
        th.start()
    start = time.perf_counter()
    go.set()
    for th in threads:
        th.join(timeout=1800)  # bounded: a stuck server ends the benchmark, not the machine
    many = row(f"{args.clients} clients x {args.calls} calls", lat, time.perf_counter() - start, len(errors))
    if errors:
        print(f"first error: {errors[0]}")

    print(
        f"\nratios to the pipeline alone: 1 client p50 x{one['p50'] / base['p50']:.2f}; "
        f"{args.clients} clients p50 x{many['p50'] / base['p50']:.2f}, p95 x{many['p95'] / base['p50']:.2f}, "
        f"throughput x{many['per_s'] / base['per_s']:.2f}"
    )


if __name__ == "__main__":
    sys.exit(main())

"""A real `python -m demo` process for the benchmarks: started on a free loopback port, waited for, stopped.

from benchmarks.demo_process import running_demo
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_demo(work: Path, env: dict[str, str], startup_s: float = 300):
    """Start the demo (its output in work/demo.log), yield (process, url) once it accepts connections, stop it.
    Raises RuntimeError naming the log when it does not start."""
    port = free_port()
    with open(work / "demo.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "demo", "--host", "127.0.0.1", "--port", str(port), "--poll", "0"],
            cwd=work,
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.time() + startup_s
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=2):
                        break
                except OSError:
                    if proc.poll() is not None or time.time() > deadline:
                        raise RuntimeError(f"the demo did not start; see {work / 'demo.log'}") from None
                    time.sleep(0.5)
            yield proc, f"http://127.0.0.1:{port}/"
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)

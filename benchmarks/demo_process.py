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


def accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


@contextmanager
def running_process(cmd: list[str], work: Path, log_name: str, ready, env: dict[str, str], startup_s: float = 300):
    """Start `cmd` in its own session (output in work/log_name), yield the process once `ready()` is true, then
    stop the whole session. Raises RuntimeError naming the log when it exits or times out first."""
    with open(work / log_name, "w") as log:
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.time() + startup_s
            while not ready():
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"{' '.join(cmd[:3])} did not start; see {work / log_name}")
                time.sleep(0.5)
            yield proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)


@contextmanager
def running_demo(work: Path, env: dict[str, str], startup_s: float = 300):
    """Start the demo (its output in work/demo.log), yield (process, url) once it accepts connections, stop it.
    Raises RuntimeError naming the log when it does not start."""
    port = free_port()
    cmd = [sys.executable, "-m", "demo", "--host", "127.0.0.1", "--port", str(port), "--poll", "0"]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    with running_process(cmd, work, "demo.log", lambda: accepts_connections(port), full_env, startup_s) as proc:
        yield proc, f"http://127.0.0.1:{port}/"

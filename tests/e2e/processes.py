"""Real clarion processes for end-to-end tests: started, health-checked, killed, never left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support import free_port


class ClarionProcess:
    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.args = args
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ClarionProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "clarion.cli", *self.args],
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL: nothing gets to clean up, as in a crash."""
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def terminate(self, timeout_s: float = 30) -> int:
        self.signal(signal.SIGTERM)
        assert self.proc is not None
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Server(ClarionProcess):
    def __init__(self, env: dict[str, str], log_path: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        super().__init__(["serve", "--host", "127.0.0.1", "--port", str(self.port)], env, log_path)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        super().start()
        self.wait_healthy()
        return self

    def wait_healthy(self, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"clarion serve exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"clarion serve did not become healthy:\n{self.log()}")


class Processes:
    """Tracks every process a test starts and kills the survivors at teardown."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.tmp_path = tmp_path
        self.env = env
        self.started: list[ClarionProcess] = []

    def server(self, port: int | None = None) -> Server:
        server = Server(self.env, self.tmp_path / f"serve-{len(self.started)}.log", port)
        self.started.append(server)
        return server.start()

    def worker(self) -> ClarionProcess:
        worker = ClarionProcess(["worker"], self.env, self.tmp_path / f"worker-{len(self.started)}.log")
        self.started.append(worker)
        return worker.start()

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "clarion.cli", *args],
            env={**os.environ, **self.env},
            capture_output=True,
            check=True,
            timeout=60,
        )
        return done.stdout.decode()

    def close(self) -> None:
        for process in self.started:
            process.kill()

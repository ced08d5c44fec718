"""Child processes of a benchmark run, and what /proc says about them (CPU time, peak RSS).

Every child is started in its own session, so it and anything it starts die with one killpg; the group
kills whatever is left however the run ends.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
# The machine counts as quiet when other work keeps less than this much of one core busy.
QUIET_CORES = 0.25
QUIET_WINDOW_S = 1.0


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class ProcessGroup:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[Child] = []

    def start(self, name: str, args: list[str], env: dict[str, str], *, stdout_pipe: bool = False) -> Child:
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                args,
                env={**os.environ, **env},
                stdout=subprocess.PIPE if stdout_pipe else log,
                stderr=log,
                start_new_session=True,
            )
        child = Child(name, proc, log_path)
        self.children.append(child)
        return child

    def start_python(self, name: str, module: str, *args: str, env: dict[str, str] | None = None) -> Child:
        return self.start(name, [sys.executable, "-m", module, *args], env or {})

    def stop(self, child: Child, timeout_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited in `timeout_s`."""
        if child.proc.poll() is None:
            _signal_group(child.pid, signal.SIGTERM)
            try:
                child.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                _signal_group(child.pid, signal.SIGKILL)
                child.proc.wait(timeout_s)
        else:
            _signal_group(child.pid, signal.SIGKILL)  # anything it left in its session
        if child.proc.stdout is not None:
            child.proc.stdout.close()

    def close(self) -> None:
        for child in reversed(self.children):
            with contextlib.suppress(Exception):
                self.stop(child)
        self.children.clear()


def start_push_service(group: ProcessGroup, *args: str) -> tuple[Child, str]:
    """bench/push_service.py (with `args`) in its own process; returns it and its origin once it listens."""
    script = Path(__file__).with_name("push_service.py")
    push = group.start("push-service", [sys.executable, str(script), *args], {}, stdout_pipe=True)
    assert push.proc.stdout is not None
    line = push.proc.stdout.readline().decode().strip()  # EOF (b"") if it died before listening
    if not line.startswith("PORT "):
        raise RuntimeError(f"the push service did not start:\n{push.log_tail()}")
    return push, f"http://127.0.0.1:{line.split()[1]}"


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def cpu_seconds(pid: int, *, thread: int | None = None) -> float:
    """utime + stime (proc(5): fields 14 and 15 of stat) of every thread, or of one thread, of `pid`."""
    path = Path(f"/proc/{pid}/stat") if thread is None else Path(f"/proc/{pid}/task/{thread}/stat")
    raw = path.read_text()
    fields = raw[raw.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S


def main_thread_cpu_seconds(pid: int) -> float:
    """The main thread alone: in Clarion, the event loop (SQLite runs in aiosqlite's own threads)."""
    return cpu_seconds(pid, thread=pid)


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the process's peak resident set size."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def service_cpu_seconds(database: str | None) -> dict[int, tuple[str, float]]:
    """(service, CPU seconds) by pid: the Redis server and the PostgreSQL backends serving `database`.

    Other databases' backends (other people's tests on a shared machine) are left out; so are the
    PostgreSQL background processes (WAL writer, checkpointer), which serve every database at once.
    """
    if database is None:
        return {}
    found: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError):
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if command.startswith("redis-server"):
                found[int(entry.name)] = ("redis", cpu_seconds(int(entry.name)))
            elif command.startswith("postgres:") and database in command:
                found[int(entry.name)] = ("postgres", cpu_seconds(int(entry.name)))
    return found


def service_cpu_delta(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], service: str
) -> float:
    """CPU one service used between two snapshots (backends started in between count from zero)."""
    return sum(
        seconds - before.get(pid, (service, 0.0))[1]
        for pid, (name, seconds) in after.items()
        if name == service
    )


def wait_for_line(child: Child, needle: str, timeout_s: float) -> None:
    """Wait until the child's log holds `needle`; fail early, with its log, if it exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            raise RuntimeError(f"{child.name} exited with {child.proc.returncode}:\n{child.log_tail()}")
        if child.log_path.exists() and needle in child.log_path.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{child.name} did not log {needle!r} in {timeout_s}s:\n{child.log_tail()}")


def machine_busy_s() -> float:
    """Busy CPU-seconds of the whole machine since boot (proc(5), the first line of /proc/stat)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks[:8]) - idle) / CLOCK_TICKS_PER_S


def wait_for_quiet(max_wait_s: float) -> None:
    """Wall-clock figures need the CPUs: wait (a while) for other work on the machine to calm down."""
    deadline = time.monotonic() + max_wait_s
    while True:
        busy = machine_busy_s()
        time.sleep(QUIET_WINDOW_S)
        cores_busy = (machine_busy_s() - busy) / QUIET_WINDOW_S
        if cores_busy <= QUIET_CORES:
            return
        if time.monotonic() >= deadline:
            print(f"  warning: {cores_busy:.1f} cores busy with other work; wall-clock figures suffer")
            return

"""Subscriber import: time and peak memory of `clarion subscribers import` by file size.

    python -m bench.subscriber_import [--sizes 10000,50000,200000] [--database-url URL] [--http]

For each size N an NDJSON file of N subscribers (four in five web endpoints with keys, the rest
Android tokens; two tags each, one in ten with an alias) is imported into a new app of a new SQLite
database (or of the PostgreSQL URL given), by the CLI in its own process, and imported a second time
(every line then known). Printed per run: seconds, lines a second, and the process' peak RSS
(`wait4`'s ru_maxrss). The import streams, so the peak should not grow with N.

With --http the file is uploaded instead to `POST /v1/apps/{app_key}/subscribers/import` of a
`clarion serve` started for the run, and the server's peak RSS (VmHWM) is read before and after.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from tests.subscriber.transfer_data import auth, p256dh
from tests.support import free_port

from clarion.secrets_box import new_key


def write_file(path: Path, n: int) -> None:
    key = p256dh(7)  # a valid browser key; every line may share it (only the endpoint must differ)
    with path.open("w") as out:
        for i in range(n):
            tags = [f"topic-{i % 20}", f"lang-{i % 3}"]
            if i % 5 == 4:
                line: dict[str, object] = {"platform": "android", "token": f"fcm-{i:012d}", "tags": tags}
            else:
                endpoint = f"https://fcm.googleapis.com/fcm/send/bench-{i:012d}"
                line = {"endpoint": endpoint, "p256dh": key, "auth": auth(i), "tags": tags}
            if i % 10 == 0:
                line["alias"] = f"user-{i}"
            out.write(json.dumps(line) + "\n")


def run(env: dict[str, str], *args: str) -> tuple[float, int, str]:
    """(seconds, peak RSS in KiB, stdout) of one CLI process."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "clarion.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    output = process.stdout.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"clarion {' '.join(args)} failed ({process.returncode})")
    return time.perf_counter() - started, usage.ru_maxrss, output


def _peak_kib(pid: int) -> int:
    """A running process' peak resident set (VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise SystemExit("no VmHWM in /proc: --http needs Linux")


@contextlib.contextmanager
def _server(env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """A `clarion serve` of the run's database: (its base URL, its pid)."""
    port = free_port()
    command = [sys.executable, "-m", "clarion.cli", "serve", "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit("clarion serve did not start")
            time.sleep(0.2)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def _upload(url: str, app: dict[str, str], data: Path) -> dict[str, object]:
    def pieces() -> Iterator[bytes]:
        with data.open("rb") as file:
            while block := file.read(64 * 1024):
                yield block

    answer = httpx.post(
        f"{url}/v1/apps/{app['app_key']}/subscribers/import",
        content=pieces(),
        auth=(app["app_key"], app["app_secret"]),
        headers={"Content-Type": "application/x-ndjson"},
        timeout=600,
    )
    answer.raise_for_status()
    report: dict[str, object] = answer.json()
    return report


def _line(
    n: int, label: str, seconds: float, peak_kib: int, idle_kib: int, data: Path, report: dict[str, object]
) -> str:
    return (
        f"N={n:>7} {label:>5}: {seconds:6.1f} s, {n / seconds:7.0f} lines/s, "
        f"peak RSS {peak_kib / 1024:6.1f} MiB (before: {idle_kib / 1024:.1f} MiB), "
        f"file {data.stat().st_size / 1e6:.1f} MB, created {report['created']}, existing {report['existing']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,50000,200000")
    parser.add_argument("--database-url", help="default: a new SQLite file per size")
    parser.add_argument("--http", action="store_true", help="upload to a running server instead of the CLI")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        root = Path(workdir)
        for n in (int(size) for size in args.sizes.split(",")):
            url = args.database_url or f"sqlite:///{root / f'import-{n}.db'}"
            env = {**os.environ, "CLARION_DATABASE_URL": url, "CLARION_DATA_DIR": str(root / f"data-{n}")}
            env.setdefault("CLARION_SECRET_KEY", new_key())
            env.setdefault("CLARION_ADMIN_TOKEN", new_key())
            app = json.loads(run(env, "apps", "create", f"bench {n}", "--json")[2])
            data = root / f"subs-{n}.ndjson"
            write_file(data, n)
            if args.http:
                with _server(env) as (base_url, pid):
                    idle_kib = _peak_kib(pid)
                    for label in ("new", "again"):
                        started = time.perf_counter()
                        report = _upload(base_url, app, data)
                        seconds = time.perf_counter() - started
                        print(_line(n, label, seconds, _peak_kib(pid), idle_kib, data, report), flush=True)
                continue
            _, idle_kib, _ = run(env, "apps", "show", app["app_key"], "--json")
            for label in ("new", "again"):
                seconds, peak_kib, output = run(
                    env, "subscribers", "import", app["app_key"], str(data), "--json"
                )
                report = json.loads(output)
                assert report["refused"] == 0, report["refusals"][:3]
                print(_line(n, label, seconds, peak_kib, idle_kib, data, report), flush=True)


if __name__ == "__main__":
    main()

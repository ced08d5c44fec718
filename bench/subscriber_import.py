"""Subscriber import: time and peak memory of `clarion subscribers import` by file size.

    python -m bench.subscriber_import [--sizes 10000,50000,200000] [--database-url URL]

For each size N an NDJSON file of N subscribers (four in five web endpoints with keys, the rest
Android tokens; two tags each, one in ten with an alias) is imported into a new app of a new SQLite
database (or of the PostgreSQL URL given), by the CLI in its own process, and imported a second time
(every line then known). Printed per run: seconds, lines a second, and the process' peak RSS
(`wait4`'s ru_maxrss). The import streams, so the peak should not grow with N.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.subscriber.transfer_data import auth, p256dh

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,50000,200000")
    parser.add_argument("--database-url", help="default: a new SQLite file per size")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        root = Path(workdir)
        for n in (int(size) for size in args.sizes.split(",")):
            url = args.database_url or f"sqlite:///{root / f'import-{n}.db'}"
            env = {**os.environ, "CLARION_DATABASE_URL": url, "CLARION_DATA_DIR": str(root / f"data-{n}")}
            env.setdefault("CLARION_SECRET_KEY", new_key())
            app_key = json.loads(run(env, "apps", "create", f"bench {n}", "--json")[2])["app_key"]
            data = root / f"subs-{n}.ndjson"
            write_file(data, n)
            _, idle_kib, _ = run(env, "apps", "show", app_key, "--json")
            for label in ("new", "again"):
                seconds, peak_kib, output = run(env, "subscribers", "import", app_key, str(data), "--json")
                report = json.loads(output)
                assert report["refused"] == 0, report["refusals"][:3]
                print(
                    f"N={n:>7} {label:>5}: {seconds:6.1f} s, {n / seconds:7.0f} lines/s, "
                    f"peak RSS {peak_kib / 1024:6.1f} MiB (a CLI command that imports nothing: "
                    f"{idle_kib / 1024:.1f} MiB), file {data.stat().st_size / 1e6:.1f} MB, "
                    f"created {report['created']}, existing {report['existing']}",
                    flush=True,
                )


if __name__ == "__main__":
    main()

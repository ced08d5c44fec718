"""Optional sampling of the Clarion processes during a campaign with py-spy, and a plain-text summary.

py-spy is not a Clarion dependency: `.venv/bin/pip install py-spy`. Its `raw` output is one collapsed
stack per line (`outer;...;inner count`); the summary adds up self and inclusive samples by frame.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.processes import Child, ProcessGroup

SAMPLES_PER_S = 100
TOP_FRAMES = 25


class Profilers:
    def __init__(self, group: ProcessGroup, out_dir: Path) -> None:
        self.group = group
        self.out_dir = out_dir
        self.running: list[tuple[Child, Path]] = []

    def attach(self, target: Child) -> None:
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not Path(py_spy).exists():
            raise RuntimeError("--profile needs py-spy: .venv/bin/pip install py-spy")
        output = self.out_dir / f"{target.name}.collapsed.txt"
        args = [py_spy, "record", "--pid", str(target.pid), "--rate", str(SAMPLES_PER_S)]
        args += ["--format", "raw", "--nonblocking", "--output", str(output)]
        self.running.append((self.group.start(f"py-spy-{target.name}", args, {}), output))

    def finish(self) -> list[Path]:
        """SIGINT makes py-spy write its file; returns the summaries written."""
        summaries = []
        for child, output in self.running:
            if child.proc.poll() is None:
                os.kill(child.pid, signal.SIGINT)
                try:
                    child.proc.wait(30)
                except subprocess.TimeoutExpired:
                    self.group.stop(child)
            if output.exists():
                summary = output.with_name(output.name.replace(".collapsed.txt", ".summary.txt"))
                summary.write_text(summarise(output))
                summaries.append(summary)
        self.running.clear()
        return summaries


def summarise(collapsed: Path, top: int = TOP_FRAMES) -> str:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[_frame(frames[-1])] += count
        for frame in {_frame(f) for f in frames}:
            inclusive[frame] += count
    lines = [f"{collapsed.name}: {total} samples at {SAMPLES_PER_S}/s", "", "self time:"]
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(top)]
    lines += ["", "inclusive time:"]
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in inclusive.most_common(top * 2)]
    return "\n".join(lines) + "\n"


def _frame(frame: str) -> str:
    """`func (path/to/module.py:123)` -> `func (module.py)`: lines of one function add up."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    short = "/".join(Path(path).parts[-2:]) if path else ""
    return f"{name} ({short})" if short else name

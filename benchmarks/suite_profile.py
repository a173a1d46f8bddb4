"""Where a worker's CPU goes: py-spy attached to it, its samples summed by area.

``Profiler`` runs ``py-spy record --format raw --gil`` against a process until stopped: only
the thread holding the GIL is sampled, which for a Python process is where its CPU goes (and
the one core it can use), with no waits mistaken for work. The output is collapsed stacks: one
line per distinct stack, outermost frame first, then a sample count.

``summarise`` puts each sample in an area. The leader's timers own everything they call
(``OWNERS``: the rollup timer's queries are rollup work, not "ClickHouse"). Otherwise only the
frames of the callback the event loop (or a worker thread) was running count, and the
innermost of them that matches ``AREAS`` decides: a sample inside pydantic called from a parser
is validation, one inside clickhouse-driver is the insert. A sample with no such frame is the
event loop itself: scheduling callbacks, select, handing work to and from threads.

    .venv/bin/python benchmarks/suite_profile.py profile.folded   # summarise a recorded file
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

# py-spy names a frame "function (path:line)", the path relative to its sys.path entry (so a
# module of a namespace package shows as its bare file name): patterns anchor on "(".
OWNERS: tuple[tuple[str, str], ...] = (
    ("rollup recomputation (leader timer)", r"\((?:sinks/clickhouse/)?(?:rollup|worktime)\.py:"),
    (
        "alert evaluation (snapshot queries, rules, delivery)",
        r"\(processors/alerting/|\((?:sinks/clickhouse/)?alert_(?:queries|history)\.py:"
        r"|\(sinks/alerts/",
    ),
    (
        "lag probes, metrics, web pages",
        r"\(processors/consumer_lag\.py|\(salespulse/lag\.py|\(prometheus_client/"
        r"|\(processors/web/",
    ),
)
AREAS: tuple[tuple[str, str], ...] = (
    ("clickhouse-driver insert (column serialisation, send)", r"\(clickhouse_driver/"),
    ("rows → columns, insert calls", r"\((?:sinks/clickhouse/)?(?:sink|client)\.py:"),
    ("phone hashing / masking", r"\(processors/privacy\.py"),
    ("attribution (directory lookup, time zones)", r"\(salespulse/directory\.py|\(zoneinfo/"),
    ("canonical validation (ActivityEvent, pydantic)", r"\(salespulse/models\.py|\(pydantic"),
    ("CDR parsing (CSV lines, PBX times)", r"\(processors/parsers/(?:asterisk|freeswitch)"),
    (
        "other parsing: JSON (chat, CRM), RFC 3339 times, shared helpers",
        r"\(processors/parsers/|\(json/",
    ),
    ("row building, batch bookkeeping", r"\(processors/(?:pipeline|runtime)\.py"),
    ("dead letters", r"\(sinks/deadletter\.py"),
    ("batch consumer (gather, records → messages, commits)", r"\(processors/batch_consumer\.py"),
    ("aiokafka fetch, decode, commit", r"\(aiokafka/"),
    ("faust and mode (per-message stream work; tasks, timers)", r"\((?:faust|mode)/"),
    ("logging", r"\(logging/|\(colorlog/"),
)
EVENT_LOOP = "event loop (scheduling, select, thread hand-off)"
# The frame that runs one callback of the event loop or one job of a worker thread, or the loop
# itself: the frames inside it are the work. (Non-blocking sampling sometimes catches a stack
# half unwound, without the callback frame: then what follows the loop's frame is the work.)
_CALLBACK = re.compile(r"^(?:Handle\._run|_WorkItem\.run|BaseEventLoop\._run_once) ")


class Profiler:
    """py-spy recording ``pid`` into ``output`` (collapsed stacks) until ``stop()``."""

    def __init__(self, pid: int, output: Path, rate: int = 100) -> None:
        binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(binary).exists():
            raise RuntimeError("profiling needs py-spy (not a dependency): pip install py-spy")
        self.output = output
        self.process = subprocess.Popen(
            [
                *(binary, "record", "--pid", str(pid), "--rate", str(rate), "--gil"),
                *("--format", "raw", "--output", str(output), "--nonblocking"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def stop(self) -> Path:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
        try:
            _, err = self.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        if not self.output.exists():
            raise RuntimeError(f"py-spy wrote no profile: {err.decode(errors='replace')[-2000:]}")
        return self.output


def summarise(path: Path) -> list[tuple[str, float]]:
    """(area, share of samples), in the order of ``OWNERS`` and ``AREAS``, then the event loop;
    areas without samples left out."""
    owners = [(area, re.compile(pattern)) for area, pattern in OWNERS]
    areas = [(area, re.compile(pattern)) for area, pattern in AREAS]
    counts: Counter[str] = Counter()
    for frames, samples in _stacks(path):
        counts[_area(frames, owners, areas)] += samples
    total = sum(counts.values()) or 1
    order = [area for area, _ in (*OWNERS, *AREAS)] + [EVENT_LOOP]
    return [(area, counts[area] / total) for area in order if counts[area]]


def _stacks(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if stack and number.isdigit():
            stacks.append((stack.split(";"), int(number)))
    return stacks


def _area(
    frames: list[str],
    owners: list[tuple[str, re.Pattern[str]]],
    areas: list[tuple[str, re.Pattern[str]]],
) -> str:
    for area, pattern in owners:
        if any(pattern.search(frame) for frame in frames):
            return area
    starts = [index for index, frame in enumerate(frames) if _CALLBACK.match(frame)]
    for frame in reversed(frames[starts[-1] + 1 :] if starts else frames):
        for area, pattern in areas:
            if pattern.search(frame):
                return area
    return EVENT_LOOP  # the loop between callbacks (select), a thread between jobs


def inside(path: Path, area: str, count: int = 4) -> list[tuple[str, float]]:
    """What an area's samples were doing, as shares of all samples: for a leader's timer the
    call path into it (three functions deep), for any other area its innermost two functions."""
    owners = [(name, re.compile(pattern)) for name, pattern in OWNERS]
    areas = [(name, re.compile(pattern)) for name, pattern in AREAS]
    pattern = dict((*owners, *areas)).get(area)
    paths: Counter[str] = Counter()
    stacks = _stacks(path)
    for frames, samples in stacks:
        if pattern is None or _area(frames, owners, areas) != area:
            continue
        names = [frame.split(" (")[0] for frame in frames if pattern.search(frame)]
        chosen = names[:3] if area in dict(owners) else names[-2:]
        paths[" > ".join(chosen)] += samples
    total = sum(samples for _, samples in stacks) or 1
    return [(key, samples / total) for key, samples in paths.most_common(count)]


def top_functions(path: Path, count: int = 15) -> list[tuple[str, float]]:
    """The leaf frames (where the CPU actually was) with the largest shares of samples."""
    leaves: Counter[str] = Counter()
    for frames, samples in _stacks(path):
        leaves[frames[-1]] += samples
    total = sum(leaves.values()) or 1
    return [(frame, samples / total) for frame, samples in leaves.most_common(count)]


def main() -> None:
    path = Path(sys.argv[1])
    for area, share in summarise(path):
        print(f"{share:6.1%}  {area}")
        for call, part in inside(path, area):
            print(f"        {part:6.1%}  {call}")
    print()
    for frame, share in top_functions(path):
        print(f"{share:6.1%}  {frame}")


if __name__ == "__main__":
    main()

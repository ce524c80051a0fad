"""The whole pipeline, step by step, on generated extracts of 100,000 and 1,000,000 people.

For each size: generates the extract once (`desist generate`, in a child process, cached in
--work), measures the scan floor - one DuckDB pass reading every column of every landing file,
as CSV and as Parquet copies - then runs `desist run` in a new process, as a user does (a fresh
interpreter, warehouse and Dagster instance for every run, so a repeated run pays its imports and
start-up again), while a sampler thread reads, every 50 ms, the memory (proportional set size, so
pages shared by forked processes count once; see Sampler) and CPU time of that process and its
children from /proc. Every step of every run the instance recorded (STEP_START to STEP_SUCCESS/FAILURE
in the event log) gets its wall time, CPU time, peak memory and its ratio to the CSV scan floor.
Steps that run at the same time (programme partitions, one per programme) share the samples of
their windows, so their CPU and peak memory are those of every process running then. The time
outside every step is printed too, and the part of it before the first run was created (imports,
the interpreter, the Dagster instance, the definitions).

Ends with the targets, each PASS or FAIL: 1,000,000 people end to end under 60 s with peak
memory under 2 GB, 100,000 people under 15 s, and CPU time above wall time (both cores used).

    .venv/bin/python benchmarks/pipeline.py                          # 100,000 and 1,000,000 people
    .venv/bin/python benchmarks/pipeline.py --sizes 100000 --repeat 3 --work /tmp/desist-pipeline
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from desist.config import write_settings  # noqa: E402
from desist.warehouse import quoted  # noqa: E402

SAMPLE_SECONDS = 0.05
PSS_SECONDS = 0.5
TARGETS = {  # people: (end-to-end seconds, peak MB or None)
    1_000_000: (60.0, 2048.0),
    100_000: (15.0, None),
}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- sampling this process and its children

def _descendants(pid: int) -> list[int]:
    found, queue = [], [pid]
    while queue:
        parent = queue.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                children = Path(f"/proc/{parent}/task/{task}/children").read_text().split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            for child in map(int, children):
                found.append(child)
                queue.append(child)
    return found


PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20


def _usage(pid: int) -> tuple[float, float]:
    """(resident set size MB, CPU seconds: user + system) of one process, zero if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        resident_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return 0.0, 0.0
    # After the command name: utime is field 14, stime 15 (1-based, man 5 proc).
    return resident_pages * PAGE_MB, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _proportional_mb(pid: int) -> float | None:
    """Proportional set size MB of one process (None if it is gone): pages shared with other
    processes count as their share only."""
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return next((int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:")), 0) / 1024


class Sampler(threading.Thread):
    """Samples (time, memory MB (PSS), CPU seconds) of this process's live children (the run and its workers).

    Memory is the proportional set size (PSS), not RSS: the programme workers are forked from one
    server process and share its pages (the imported libraries), which RSS would count once per
    process. Reading PSS makes the kernel walk every page of a process (at 20 samples a second it
    took about 12% of the CPU of a 1,000,000-person run, slowing the run it measured), so PSS is
    read every PSS_SECONDS and each sample in between is the process's RSS less its shared pages
    (RSS - PSS) at its last PSS reading; a process not yet read counts its whole RSS."""

    def __init__(self) -> None:
        super().__init__(name="benchmark-sampler", daemon=True)
        self.samples: list[tuple[float, float, float]] = []
        self._stopping = threading.Event()
        self._finished_children_cpu: dict[int, float] = {}
        self._shared_mb: dict[int, float] = {}
        self._shared_read_at = 0.0

    def sample(self) -> None:
        now = time.time()
        read_shared = now - self._shared_read_at >= PSS_SECONDS
        if read_shared:
            self._shared_read_at = now
        memory = 0.0
        for pid in _descendants(os.getpid()):
            resident, pid_cpu = _usage(pid)
            if read_shared and (proportional := _proportional_mb(pid)) is not None:
                self._shared_mb[pid] = max(0.0, resident - proportional)
            memory += max(0.0, resident - self._shared_mb.get(pid, 0.0))
            # CPU of children that have exited still counts: keep the last value seen of each.
            self._finished_children_cpu[pid] = max(pid_cpu, self._finished_children_cpu.get(pid, 0.0))
        self.samples.append((now, memory, sum(self._finished_children_cpu.values())))

    def run(self) -> None:
        while not self._stopping.is_set():
            self.sample()
            self._stopping.wait(SAMPLE_SECONDS)

    def stop(self) -> None:
        self._stopping.set()
        self.join()
        self.sample()

    def window(self, start: float, end: float) -> tuple[float, float]:
        """(CPU seconds, peak memory MB) between two times."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        before = [s for s in self.samples if s[0] <= start][-1:] or self.samples[:1]
        after = [s for s in self.samples if s[0] >= end][:1] or self.samples[-1:]
        around = before + inside + after
        return after[0][2] - before[0][2], max(s[1] for s in around)


# ---------------------------------------------------------------- extracts and the scan floor

def ensure_extract(work: Path, people: int, seed: int) -> Path:
    folder = work / f"extract-{people}-seed{seed}"
    if (folder / "people.csv").exists() and (folder / "ground_truth.json").exists():
        return folder
    started = time.perf_counter()
    shutil.rmtree(folder, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "desist.cli", "generate", "--people", str(people), "--seed", str(seed),
                    "--out", str(folder)], check=True, stdout=subprocess.DEVNULL)
    print(f"generated {people:,} people in {time.perf_counter() - started:.1f} s ({folder})")
    return folder


def parquet_copies(extract: Path) -> Path:
    folder = extract.with_name(extract.name + "-parquet")
    if not folder.exists():
        building = folder.with_name(folder.name + ".building")
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir(parents=True)
        with duckdb.connect() as con:
            for path in sorted(extract.glob("*.csv")):
                con.execute(f"COPY (SELECT * FROM read_csv('{path}', all_varchar=true)) "
                            f"TO '{building / (path.stem + '.parquet')}' (FORMAT parquet)")
        building.rename(folder)
    return folder


def scan_floor(folder: Path, suffix: str) -> float:
    """Seconds of one pass reading every column of every file (each column counted, so none is skipped)."""
    reader = "read_csv('{}', all_varchar=true)" if suffix == "csv" else "read_parquet('{}')"
    started = time.perf_counter()
    with duckdb.connect() as con:
        for path in sorted(folder.glob(f"*.{suffix}")):
            source = reader.format(path)
            columns = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
            con.execute(f"SELECT {', '.join(f'count({quoted(c)})' for c in columns)} FROM {source}").fetchall()
    return time.perf_counter() - started


# ---------------------------------------------------------------- one pipeline run

@dataclass
class Step:
    name: str
    wall: float
    cpu: float
    peak_mb: float


@dataclass
class Measured:
    ok: bool
    reason: str
    wall: float
    cpu: float
    peak_mb: float
    steps: list[Step] = field(default_factory=list)
    in_steps: float = 0.0  # seconds during which at least one step ran
    start_up: float = 0.0  # seconds before the first run was created (imports, instance, definitions)


def step_windows(instance) -> list[tuple[str, float, float]]:
    """(step key, start, end) of every step of every run in the instance, in start order; a programme
    partition's step is named with its programme, e.g. ``programmes__effects [P01]``."""
    import dagster as dg

    windows = []
    kinds = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}
    for run in instance.get_runs():
        partition = run.tags.get("dagster/partition")
        started: dict[str, float] = {}
        for entry in instance.all_logs(run.run_id, of_type=kinds):
            event = entry.dagster_event
            if event.event_type == dg.DagsterEventType.STEP_START:
                started[entry.step_key] = entry.timestamp
            elif entry.step_key in started:
                name = f"{entry.step_key} [{partition}]" if partition else entry.step_key
                windows.append((name, started.pop(entry.step_key), entry.timestamp))
    return sorted(windows, key=lambda w: w[1])


def covered_seconds(windows: list[tuple[float, float]]) -> float:
    """Seconds inside at least one of the (start, end) windows: steps running side by side count once."""
    covered, reach = 0.0, float("-inf")
    for start, end in sorted(windows):
        if end > reach:
            covered += end - max(start, reach)
            reach = end
    return covered


def run_once(work: Path, extract: Path, people: int, attempt: int) -> Measured:
    """`desist run` on the extract, in a new process with a fresh warehouse and Dagster instance, with
    every step measured."""
    import dagster as dg

    folder = work / f"run-{people}-{attempt}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    config = write_settings(folder, extract)
    previous_home = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(folder / "dagster_home")
    sampler = Sampler()
    sampler.start()
    started = time.time()
    try:
        with open(folder / "desist-run.out", "w") as out:
            finished = subprocess.run([sys.executable, "-m", "desist.cli", "run", "--config", str(config)],
                                      cwd=PROJECT, stdout=out, stderr=subprocess.PIPE, text=True)
    finally:
        ended = time.time()
        sampler.stop()
    errors = finished.stderr.strip().splitlines()
    reason = ([line for line in errors if line.startswith("desist: run failed")] or errors[-1:] or [""])[0]
    cpu, peak = sampler.window(started, ended)
    measured = Measured(finished.returncode == 0, reason, ended - started, cpu, peak)
    with dg.DagsterInstance.get() as instance:
        windows = step_windows(instance)
        created = [record.create_timestamp.timestamp() for record in instance.get_run_records()]
    measured.start_up = min(created, default=ended) - started
    for name, start, end in windows:
        step_cpu, step_peak = sampler.window(start, end)
        measured.steps.append(Step(name, end - start, step_cpu, step_peak))
    measured.in_steps = covered_seconds([(start, end) for _, start, end in windows])
    if previous_home is None:
        os.environ.pop("DAGSTER_HOME", None)
    else:
        os.environ["DAGSTER_HOME"] = previous_home
    return measured


# ---------------------------------------------------------------- printing and judging

def print_size(people: int, runs: list[Measured], floor_csv: float, floor_parquet: float) -> list[tuple[str, bool]]:
    print(f"\n== {people:,} people: {len(runs)} run(s); scan floor {floor_csv:.2f} s (CSV), "
          f"{floor_parquet:.2f} s (Parquet)")
    for number, run in enumerate(runs, 1):
        outcome = "ok" if run.ok else f"FAILED: {run.reason}"
        print(f"   run {number}: {run.wall:.1f} s wall, {run.cpu:.1f} s CPU, peak {run.peak_mb:,.0f} MB ({outcome})")
    names = list(dict.fromkeys(step.name for run in runs for step in run.steps))
    header = f"{'step':<44} {'wall s':>8} {'CPU s':>8} {'CPU/wall':>8} {'peak MB':>8} {'x CSV':>7} {'x Parquet':>9}"
    print(header)
    print("-" * len(header))

    def line(label: str, walls: list[float], cpus: list[float], peaks: list[float]) -> None:
        wall, cpu = statistics.median(walls), statistics.median(cpus)
        print(f"{label:<44} {wall:8.2f} {cpu:8.2f} {cpu / wall if wall else 0:8.2f} {max(peaks):8,.0f} "
              f"{wall / floor_csv:7.1f} {wall / floor_parquet:9.1f}")

    for name in names:
        found = [step for run in runs for step in run.steps if step.name == name]
        line(name, [s.wall for s in found], [s.cpu for s in found], [s.peak_mb for s in found])
    line("(outside steps: start-up, processes, printing)", [r.wall - r.in_steps for r in runs],
         [0.0] * len(runs), [0.0])
    line("  of which start-up, before the first run", [r.start_up for r in runs], [0.0] * len(runs), [0.0])
    line("whole run", [r.wall for r in runs], [r.cpu for r in runs], [r.peak_mb for r in runs])

    wall = statistics.median(r.wall for r in runs)
    cpu = statistics.median(r.cpu for r in runs)
    peak = max(r.peak_mb for r in runs)
    verdicts = [(f"{people:,}: every run succeeded", all(r.ok for r in runs))]
    limit_s, limit_mb = TARGETS.get(people, (None, None))
    if limit_s is not None:
        verdicts.append((f"{people:,}: end to end {wall:.1f} s < {limit_s:.0f} s", wall < limit_s))
    if limit_mb is not None:
        verdicts.append((f"{people:,}: peak memory {peak:,.0f} MB < {limit_mb:,.0f} MB", peak < limit_mb))
    verdicts.append((f"{people:,}: CPU time / wall time {cpu / wall:.2f} > 1 (both cores used)", cpu / wall > 1))
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="people per extract, comma-separated")
    parser.add_argument("--repeat", type=int, default=1, help="runs per size (medians are printed)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/desist-pipeline-benchmark"),
                        help="folder for the extracts (kept and reused) and the runs")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    sizes = [int(size.replace("_", "")) for size in args.sizes.split(",")]
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"{os.cpu_count()} cores; {len(os.sched_getaffinity(0))} usable")

    verdicts = []
    for people in sizes:
        extract = ensure_extract(args.work, people, args.seed)
        floor_csv = scan_floor(extract, "csv")
        floor_parquet = scan_floor(parquet_copies(extract), "parquet")
        runs = [run_once(args.work, extract, people, attempt) for attempt in range(1, args.repeat + 1)]
        verdicts += print_size(people, runs, floor_csv, floor_parquet)

    print("\nTargets")
    for label, passed in verdicts:
        print(f"  {'PASS' if passed else 'FAIL'}  {label}")


if __name__ == "__main__":
    main()

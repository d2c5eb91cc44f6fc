"""Run a command and measure its whole process tree: wall time, CPU, peak RSS and PSS.

psutil samples the tree (the process and all its descendants) every ``interval``
seconds. CPU is the sum over every pid ever seen of its last ``cpu_times()``
(user + system); the root is sampled once more as a zombie, after it exits and
before it is reaped, so its total is exact (a worker that exits between samples
loses at most one interval). Memory is summed over the tree at each sample and the
maximum kept: RSS counts pages shared by forked workers once per process, PSS
splits them between the sharers, so PSS is the fairer sum for a process pool.
``rusage_cpu_s`` (from ``wait4``: the root plus the descendants it reaped) is a
cross-check.

Between samples the harness waits on the root's exit (a pidfd, where the system
has one), not a plain sleep, so the wall time ends when the process does, not up
to one interval later: for a half-second crawl a 50 ms poll was a 5% error.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psutil

RESULTS = Path(__file__).resolve().parent / "results"

INTERVAL = 0.05
MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Measurement:
    returncode: int
    timed_out: bool
    wall_s: float
    cpu_s: float
    rusage_cpu_s: float
    peak_rss: int
    peak_pss: int
    max_processes: int
    samples: int
    processes: list[dict[str, object]]  # per pid: role, CPU s, peak RSS and PSS in MB


class TreeSampler:
    """Accumulates CPU and memory over a process tree, one ``sample()`` at a time."""

    def __init__(self, root_pid: int) -> None:
        self.root = psutil.Process(root_pid)
        self.cpu: dict[int, float] = {}
        self.peaks: dict[int, tuple[int, int]] = {}
        self.roles: dict[int, str] = {}
        self.peak_rss = self.peak_pss = self.max_processes = self.samples = 0

    def processes(self) -> list[psutil.Process]:
        try:
            return [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return [self.root]

    def sample(self) -> None:
        rss = pss = 0
        processes = self.processes()
        for process in processes:
            process_rss, process_pss = self._sample_one(process)
            rss, pss = rss + process_rss, pss + process_pss
        self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
        self.max_processes = max(self.max_processes, len(processes))
        self.samples += 1

    def _sample_one(self, process: psutil.Process) -> tuple[int, int]:
        """Record the process's CPU; return its (RSS, PSS), zeros if unreadable."""
        try:
            with process.oneshot():
                times = process.cpu_times()
                self.cpu[process.pid] = times.user + times.system
                memory = process.memory_full_info()
                self.roles.setdefault(process.pid, _role(process))
        except psutil.Error:  # gone, a zombie (no memory), or not ours
            return 0, 0
        rss, pss = memory.rss, getattr(memory, "pss", 0)
        peak_rss, peak_pss = self.peaks.get(process.pid, (0, 0))
        self.peaks[process.pid] = max(peak_rss, rss), max(peak_pss, pss)
        return rss, pss

    def per_process(self) -> list[dict[str, object]]:
        return [
            {
                "pid": pid,
                "role": self.roles.get(pid, "?"),
                "cpu_s": round(cpu, 2),
                "peak_rss_mb": round(self.peaks.get(pid, (0, 0))[0] / MB, 1),
                "peak_pss_mb": round(self.peaks.get(pid, (0, 0))[1] / MB, 1),
            }
            for pid, cpu in self.cpu.items()
        ]

    @property
    def cpu_s(self) -> float:
        return sum(self.cpu.values())

    def kill(self) -> None:
        for process in reversed(self.processes()):
            with contextlib.suppress(psutil.Error):
                process.kill()


def run_measured(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    stdout: IO[bytes],
    stderr: IO[bytes],
    timeout: float,
    interval: float = INTERVAL,
) -> Measurement:
    """Run ``command`` to completion (killing its tree after ``timeout`` s) and measure it."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=dict(env), cwd=cwd, stdout=stdout, stderr=stderr)
    sampler = TreeSampler(process.pid)
    timed_out = False
    with _exit_waiter(process.pid) as wait_for_exit:
        while not _has_exited(process.pid):
            sampler.sample()
            if not timed_out and time.perf_counter() - started > timeout:
                timed_out = True
                sampler.kill()
            wait_for_exit(interval)
    sampler.sample()  # the root is a zombie now: its CPU times are final
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    return Measurement(
        process.returncode,
        timed_out,
        wall,
        sampler.cpu_s,
        usage.ru_utime + usage.ru_stime,
        sampler.peak_rss,
        sampler.peak_pss,
        sampler.max_processes,
        sampler.samples,
        sampler.per_process(),
    )


def _role(process: psutil.Process) -> str:
    """A short name for what the process is: its command line, cut down."""
    command = " ".join(process.cmdline())
    return command if len(command) <= 80 else command[:77] + "..."


@contextlib.contextmanager
def _exit_waiter(pid: int) -> Iterator[Callable[[float], object]]:
    """A function that waits at most its argument in seconds, returning early when
    ``pid`` exits: on a pidfd where there is one, else a plain sleep."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # not Linux 5.3+, or the process is gone already
        yield time.sleep
        return
    try:
        yield lambda seconds: select.select([pidfd], [], [], seconds)
    finally:
        os.close(pidfd)


def _has_exited(pid: int) -> bool:
    """Whether ``pid`` has exited, leaving it unreaped (WNOWAIT)."""
    result = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    return result is not None


def save_report(name: str, report: Mapping[str, object]) -> None:
    """Write ``report`` to ``bench/results/NAME.json`` and say where."""
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {path}")


def runs_on_trees(
    script: Sequence[str], trees: Mapping[str, Path], rounds: int
) -> dict[str, list[dict[str, object]]]:
    """Run ``script`` (a command that prints one JSON object last) once per round on
    each checkout in ``trees`` (``--tree DIR`` is appended), the order alternating
    from round to round so that drift in machine load favours neither; each run's
    JSON, by tree name."""
    runs: dict[str, list[dict[str, object]]] = {name: [] for name in trees}
    for rep in range(rounds):
        for name in list(trees) if rep % 2 == 0 else list(trees)[::-1]:
            command = [*script, "--tree", str(trees[name])]
            env = {**os.environ, "PYTHONPATH": str(trees[name])}
            output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
            runs[name].append(json.loads(output.splitlines()[-1]))
            print(name, runs[name][-1], flush=True)
    return runs

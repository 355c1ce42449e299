"""The processes of a chaos run: order workers, one limit matcher, one expiry sweeper and
one analytics worker, each a real `order-processor worker ...` process. The supervisor
SIGKILLs one at seeded random moments and restarts it at once, sometimes "armed" with the
fault hook (`crash-after=<step>`: the process SIGKILLs itself right after that step
commits), which puts a kill exactly between a commit and its event or its delete, where a
random moment rarely lands. Every death is logged with its time and program."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tests.e2e.harness import Harness
from tests.support import CLI

RECOVERY_AGE_SECONDS = 5
# A process that has not installed its SIGTERM handler after this long is hung, not slow
# (a busy machine's start-up takes seconds): SIGKILLed and reported, never SIGTERMed.
HUNG_SECONDS = 180.0
# The order worker's commit points (each command is one write, or two when the first is
# refused), weighted towards the writes most commands end with: a market order's and a
# limit execution's `completed`, a limit order's `held`.
WORKER_STEPS = (
    ("completed", 4),
    ("held", 2),
    ("failed", 1),
    ("cancelled", 1),
    ("expired", 1),
    ("released", 1),
    ("funds", 2),
    ("converted", 1),
)


def handles_sigterm(pid: int) -> bool:
    """Whether the process has installed a SIGTERM handler (Linux: SigCgt in
    /proc/<pid>/status); elsewhere assume it has."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    caught = next(
        (line.split()[1] for line in status.splitlines() if line.startswith("SigCgt")), "0"
    )
    return bool(int(caught, 16) >> (signal.SIGTERM - 1) & 1)


@dataclass
class Program:
    """One supervised process and what it runs."""

    name: str
    kind: str  # orders | limit-matcher | expiry-sweeper | analytics
    process: subprocess.Popen[bytes] | None = None
    armed: str | None = None  # the crash-after step of the running process
    retiring: bool = False  # being stopped on purpose: not a death to restart
    hung: bool = False  # never installed its SIGTERM handler: SIGKILLed

    def arguments(self) -> list[str]:
        extra = ["--interval", "1"] if self.kind == "expiry-sweeper" else []
        return [CLI, "worker", self.kind, *extra]

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def armable_steps(self) -> tuple[tuple[str, int], ...]:
        if self.kind == "orders":
            return WORKER_STEPS
        if self.kind == "limit-matcher":
            return (("trailed", 1), ("matched", 1), ("rated", 1))
        if self.kind == "analytics":
            return (("analytics", 1),)  # a final event applied, its message not yet deleted
        return ()


def _cause(program: Program, code: int) -> str:
    if program.hung:
        return f"exited unexpectedly: hung in start-up for {HUNG_SECONDS:.0f} s, SIGKILLed"
    if code == -signal.SIGKILL and program.armed is not None:
        return f"crashed itself (crash-after={program.armed})"
    return f"exited unexpectedly with status {code}"


@dataclass(frozen=True)
class Death:
    """A kill (ours) or a crash (the armed process's own SIGKILL, or an unexpected exit)."""

    at: float
    program: str
    pid: int
    how: str
    restarted_pid: int | None
    armed_next: str | None

    def line(self) -> str:
        after = f" -> restarted as pid {self.restarted_pid}" if self.restarted_pid else ""
        armed = f" (armed: crash-after={self.armed_next})" if self.armed_next else ""
        return f"[{self.at:6.1f}s] {self.how} {self.program} pid {self.pid}{after}{armed}"


@dataclass
class Supervisor:
    harness: Harness
    rng: random.Random
    log_dir: Path
    workers: int = 2
    armed_ratio: float = 0.5
    on_death: Callable[[Death], None] = lambda death: None
    started: float = field(default_factory=time.monotonic)
    programs: list[Program] = field(default_factory=list)
    deaths: list[Death] = field(default_factory=list)
    _logs: list[IO[bytes]] = field(default_factory=list)

    def start(self) -> None:
        names = [(f"orders-{n + 1}", "orders") for n in range(self.workers)]
        names += [(kind, kind) for kind in ("limit-matcher", "expiry-sweeper", "analytics")]
        self.programs = [Program(name, kind) for name, kind in names]
        for program in self.programs:
            self._launch(program, armed=None)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def _launch(self, program: Program, armed: str | None) -> None:
        log = (self.log_dir / f"{program.name}.log").open("ab")
        self._logs.append(log)
        log.write(f"--- start at {self.elapsed():.1f}s armed={armed}\n".encode())
        log.flush()
        environment = self.harness.worker_environment(f"crash-after={armed}" if armed else None)
        environment["ORDER_PROCESSOR_RECOVERY_AGE_SECONDS"] = str(RECOVERY_AGE_SECONDS)
        program.process = subprocess.Popen(
            program.arguments(), env=environment, stdout=log, stderr=subprocess.STDOUT
        )
        program.armed, program.hung = armed, False

    # --- the kill phase --------------------------------------------------------------

    def kill_times(self, kills: int, seconds: float) -> list[float]:
        """Seeded moments within the load, away from its very start and end."""
        return sorted(self.rng.uniform(0.1 * seconds, 0.95 * seconds) for _ in range(kills))

    async def run_kills(self, times: list[float]) -> None:
        for moment in times:
            delay = moment - self.elapsed()
            if delay > 0:
                await asyncio.sleep(delay)
            self.kill(self._victim())

    def _victim(self) -> Program:
        weights = [2 if p.kind in {"orders", "analytics"} else 1 for p in self.programs]
        return self.rng.choices(self.programs, weights)[0]

    def _arming(self, program: Program) -> str | None:
        steps = program.armable_steps()
        if not steps or self.rng.random() >= self.armed_ratio:
            return None
        names = [name for name, _ in steps]
        step: str = self.rng.choices(names, [weight for _, weight in steps])[0]
        return step

    def kill(self, program: Program) -> None:
        """SIGKILL and restart, with no await in between: the watcher never sees the gap.
        A process that already died by itself is left to the watcher, which logs why."""
        assert program.process is not None
        if program.process.poll() is not None:
            return
        pid = program.pid
        os.kill(pid, signal.SIGKILL)
        program.process.wait()  # a SIGKILLed process is reaped at once
        self._restart(program, pid, "SIGKILL", self._arming(program))

    def _restart(self, program: Program, pid: int, how: str, armed: str | None) -> None:
        self._launch(program, armed)
        death = Death(self.elapsed(), program.name, pid, how, program.pid, armed)
        self.deaths.append(death)
        self.on_death(death)

    async def watch(self, stop: asyncio.Event) -> None:
        """Restart, unarmed, any process that died by itself (an armed crash, a failure)."""
        while not stop.is_set():
            for program in self.programs:
                assert program.process is not None
                code = program.process.poll()
                if code is not None and not program.retiring:
                    self._restart(program, program.pid, _cause(program, code), None)
            try:
                await asyncio.wait_for(stop.wait(), 0.2)
            except TimeoutError:
                continue

    async def disarm(self) -> None:
        """End of the kill phase: an armed process that has not crashed yet is replaced by
        an unarmed one (stopped with SIGTERM: it finishes or hands back its work)."""
        for program in self.programs:
            if program.armed is not None and program.process is not None:
                program.retiring = True
                await self._terminate(program)
                code = await asyncio.to_thread(self._reap, program)
                if code == 0:
                    self._launch(program, armed=None)
                else:  # it crashed (or failed) while being stopped: log it like any death
                    self._restart(program, program.pid, _cause(program, code), None)
                program.retiring = False

    async def _terminate(self, program: Program) -> None:
        """SIGTERM once the process handles it, however long its start-up takes on a busy
        machine: a process still starting up would die of the signal's default action,
        which says nothing about its shutdown. One that never gets there is hung: it is
        SIGKILLed, and its exit status (not 0) is the finding."""
        assert program.process is not None
        hung = time.monotonic() + HUNG_SECONDS
        while program.process.poll() is None and not handles_sigterm(program.pid):
            if time.monotonic() > hung:
                program.hung = True
                program.process.kill()
                return
            await asyncio.sleep(0.1)
        if program.process.poll() is None:
            program.process.send_signal(signal.SIGTERM)

    @property
    def unexpected_exits(self) -> list[Death]:
        return [d for d in self.deaths if d.how.startswith("exited unexpectedly")]

    async def stop(self) -> dict[str, int]:
        """SIGTERM every process and wait for it; the exit status of each."""
        for program in self.programs:
            program.retiring = True
        await asyncio.gather(*(self._terminate(p) for p in self.programs))
        codes = {p.name: await asyncio.to_thread(self._reap, p) for p in self.programs}
        for log in self._logs:
            log.close()
        return codes

    def _reap(self, program: Program) -> int:
        assert program.process is not None
        try:
            return program.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            program.process.kill()
            return program.process.wait()

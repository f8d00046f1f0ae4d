"""Progress of a long command (import, archive): a `rich` bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("viewer_service.import")


class Progress:
    """begin/advance/end per table; positions are byte offsets in its file (the ETA comes from them)."""

    def __init__(self, tty: bool | None = None, log_every: float = 5.0):
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.log_every = log_every
        self._bar = None
        self._tasks: dict[str, int] = {}
        self._state: dict[str, tuple] = {}

    def begin(self, table: str, size: int, offset: int, rows: int) -> None:
        now = time.monotonic()
        self._state[table] = (size, offset, rows, now, now)
        if self.tty:
            from rich.progress import (BarColumn, Progress as Bar, TaskProgressColumn, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            if self._bar is None:
                self._bar = Bar(TextColumn("{task.description:<26}"), BarColumn(), TaskProgressColumn(),
                                TextColumn("{task.fields[rows]:>12,} rows  {task.fields[rate]:>9,.0f} rows/s"),
                                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                transient=False, refresh_per_second=4)
                self._bar.start()
            self._tasks[table] = self._bar.add_task(table, total=size, completed=offset, rows=rows, rate=0.0)
        else:
            log.info("%s: starting at byte %d of %d (%d rows already imported)", table, offset, size, rows)

    def advance(self, table: str, offset: int, rows: int) -> None:
        size, start_off, start_rows, t0, last = self._state[table]
        now = time.monotonic()
        rate = (rows - start_rows) / (now - t0) if now > t0 else 0.0
        if self.tty:
            self._bar.update(self._tasks[table], completed=offset, rows=rows, rate=rate)
        elif now - last >= self.log_every:
            done = offset - start_off
            eta = (size - offset) * (now - t0) / done if done > 0 else 0
            log.info("%s: %d rows (%.0f%%), %.0f rows/s, ETA %.0f s", table, rows,
                     100 * offset / size if size else 100, rate, eta)
            last = now
        self._state[table] = (size, start_off, start_rows, t0, last)

    def end(self, table: str) -> None:
        if not self.tty:
            log.info("%s: done", table)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


class CountProgress:
    """One count (enrolments, learners) towards a known total: a rich bar on a terminal, otherwise
    a log line on `logger` at most every 2 seconds (archive, restore)."""

    def __init__(self, what: str, total: int, unit: str, logger: logging.Logger = log):
        self.log = logger
        self.what, self.total, self.unit, self.done, self.last = what, total, unit, 0, 0.0
        self.bar = None
        if sys.stderr.isatty():
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)
            self.bar = Progress(TextColumn(f"{what}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
                                TimeElapsedColumn(), TimeRemainingColumn(), transient=False)
            self.task = self.bar.add_task(what, total=total)
            self.bar.start()
        self.started = time.monotonic()

    def advance(self, n: int, note: str = "") -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(self.task, advance=n)
            return
        now = time.monotonic()
        if now - self.last >= 2 or self.done >= self.total:
            self.last = now
            rate = self.done / max(now - self.started, 1e-9)
            self.log.info("%s: %d/%d %s (%.0f/s)%s", self.what, self.done, self.total, self.unit, rate, note)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()

    def __enter__(self) -> CountProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

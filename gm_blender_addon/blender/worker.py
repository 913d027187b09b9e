"""Running pure work (the pipeline) off Blender's main thread, so that the UI keeps drawing while it runs.

Blender's Python API is not thread-safe, so the work must not touch bpy: it gets plain arguments and returns plain
data, which the main thread then puts into the scene. The heavy parts (numpy, scipy, librosa's numba kernels,
onnxruntime) release the GIL, and pure-Python stretches are interleaved by the interpreter's switch interval, so the
main thread stays responsive. The main thread polls the job from a modal operator's timer.

Cancelling cannot interrupt a thread. The job raises `Cancelled` inside the work at its next progress report, and
the operator stops waiting at once; a cancelled job's result is never used.
"""

from __future__ import annotations

import threading
from typing import Callable, Generic, TypeVar

Result = TypeVar("Result")
Progress = Callable[[float, str], None]


class Cancelled(Exception):
    """Raised inside cancelled work at its next progress report."""


class Job(Generic[Result]):
    """`work(progress)` run in a daemon thread; progress, completion and the result are read from the main thread."""

    def __init__(self, work: Callable[[Progress], Result]):
        self._work = work
        self._lock = threading.Lock()
        self._cancelled = threading.Event()
        self._finished = threading.Event()
        self._progress = (0.0, "Starting")
        self._result: Result | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="Gesture Maestro job", daemon=True)

    def start(self) -> "Job[Result]":
        self._thread.start()
        return self

    def _report(self, fraction: float, message: str) -> None:
        if self._cancelled.is_set():
            raise Cancelled
        with self._lock:
            self._progress = (fraction, message)

    def _run(self) -> None:
        try:
            self._result = self._work(self._report)
        except BaseException as exc:  # handed to the main thread, which re-raises it from result()
            self._error = exc
        finally:
            self._finished.set()

    @property
    def progress(self) -> tuple[float, str]:
        with self._lock:
            return self._progress

    @property
    def done(self) -> bool:
        return self._finished.is_set()

    def cancel(self) -> None:
        self._cancelled.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._finished.wait(timeout)

    def result(self) -> Result:
        """The work's return value, or its exception raised again; only once `done`."""
        if not self.done:
            raise RuntimeError("the job is still running")
        if self._error is not None:
            raise self._error
        return self._result

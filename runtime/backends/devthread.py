"""One OS thread that runs every call to a device, in order (samna has no thread-safety guarantees).

The event loop (trio or asyncio, through anyio) waits for each job without blocking. A cancelled wait
abandons the result, never the thread; :meth:`DeviceThread.stop` lets the job in progress finish (device
reads use short timeouts, so that is prompt) and joins the thread, so no thread outlives the session.

Why not ``anyio.to_thread``: its worker threads are pooled and interchangeable, while a device handle
should see every call from the one thread that opened it. The result travels back through the loop's own
thread-safe "call soon" (trio's token, asyncio's ``call_soon_threadsafe``), which never blocks the device
thread - not even when the loop has already finished.
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Callable

import anyio
import sniffio

__all__ = ['DeviceThread', 'loop_call_soon']


def loop_call_soon() -> Callable[[Callable[[], Any]], None]:
    """A function that schedules ``fn()`` on the running event loop from any thread; it raises RuntimeError
    once that loop has finished (the result is then dropped: nobody is waiting)."""
    if sniffio.current_async_library() == "trio":
        import trio

        token = trio.lowlevel.current_trio_token()

        def soon(fn):
            try:
                token.run_sync_soon(fn)
            except trio.RunFinishedError:
                raise RuntimeError("the event loop has finished") from None

        return soon
    import asyncio

    loop = asyncio.get_running_loop()

    def soon_asyncio(fn):
        loop.call_soon_threadsafe(fn)  # RuntimeError when the loop is closed

    return soon_asyncio


class _Job:
    __slots__ = ("fn", "args", "soon", "done", "result")

    def __init__(self, fn, args, soon):
        self.fn, self.args, self.soon = fn, args, soon
        self.done = anyio.Event()
        self.result: tuple[str, Any] | None = None


class DeviceThread:
    def __init__(self, name: str = "speckstream-device"):
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                result = ("ok", job.fn(*job.args))
            except BaseException as e:  # delivered to the awaiting task
                result = ("err", e)

            def deliver(job=job, result=result):
                job.result = result
                job.done.set()

            try:
                job.soon(deliver)
            except RuntimeError:
                pass  # the loop has finished: nobody waits for this result
            if job.fn is _STOP:
                return

    async def run(self, fn, *args):
        """Run ``fn(*args)`` on the device thread and return its result (or raise its exception)."""
        if not self._thread.is_alive():
            raise RuntimeError("device thread is stopped")
        job = _Job(fn, args, loop_call_soon())
        self._jobs.put(job)
        await job.done.wait()  # cancelled: the result is dropped when it comes
        assert job.result is not None
        kind, value = job.result
        if kind == "err":
            raise value
        return value

    def post(self, fn, *args) -> None:
        """Queue ``fn(*args)`` behind the jobs already queued, waiting for nothing (its result and errors are
        dropped): for clean-up that must run even when the job in progress is blocked and nobody can wait."""
        if self._thread.is_alive():
            self._jobs.put(_Job(fn, args, _nobody))

    async def stop(self, timeout_s: float = 0.5) -> None:
        """Let the job in progress finish, then end the thread - waiting ``timeout_s`` at most: a samna call
        blocked in C cannot be interrupted, and closing must stay prompt. Such a thread (a daemon) ends when
        the blocked call returns; ``busy_at_stop`` says it happened."""
        self.busy_at_stop = False
        if self._thread.is_alive():
            with anyio.CancelScope(shield=True):
                with anyio.move_on_after(timeout_s):
                    await self.run(_STOP)
        self._thread.join(timeout=0.05)
        self.busy_at_stop = self._thread.is_alive()


def _STOP() -> None:
    return None


def _nobody(fn) -> None:
    """The "call soon" of a posted job: nobody waits for its result."""

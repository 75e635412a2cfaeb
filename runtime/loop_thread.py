"""The event loop behind the blocking facade: one daemon thread running trio or asyncio, taking jobs from any
other thread - including a thread that runs an event loop of its own (a Jupyter cell, an ``async def`` that calls
blocking code, a trio task).

Why not anyio's ``start_blocking_portal``: its calls travel through ``trio.from_thread``, which refuses to be
called from a thread that runs trio (``ss.connect`` inside a trio task then hung in the portal's join), and its
context manager, left open by a script that never closes its session, is finalized at interpreter exit by
calling into a loop thread that can no longer run - the process never exits. Here jobs travel through the loop's
own thread-safe "call soon" (:func:`~speckstream.runtime.backends.devthread.loop_call_soon`: trio's token,
asyncio's ``call_soon_threadsafe``), which any thread may call, and the thread is a daemon: whatever is still
open at exit is closed by an exit hook (``blocking.py``), never waited for by the interpreter.

An async context manager (the Session: its task group must be left by the task that entered it) is held open
by one task of its own (:meth:`LoopThread.hold`), as anyio's portal does.
"""
from __future__ import annotations

import concurrent.futures as cf
import inspect
import threading
from collections import deque
from typing import Any, Callable

import anyio

from .backends.devthread import loop_call_soon
from .errors import DeviceClosed, DeviceError

__all__ = ["LoopThread", "Held"]

#: how long an interrupted call (Ctrl-C) may take to unwind on the loop (closing recordings...) before the
#: interrupt is re-raised anyway
UNWIND_S = 2.0


class _Job:
    __slots__ = ("fn", "args", "future", "scope")

    def __init__(self, fn: Callable, args: tuple):
        self.fn, self.args = fn, args
        self.future: cf.Future = cf.Future()
        self.scope: anyio.CancelScope | None = None


class Held:
    """An async context manager entered on the loop by a task that stays inside it until :meth:`exit`."""

    def __init__(self, loop: "LoopThread", cm: Any):
        self._loop, self._cm = loop, cm
        self.entered: cf.Future = cf.Future()
        self.exited: cf.Future = cf.Future()
        self._exc_info: tuple = (None, None, None)
        self._leave: anyio.Event | None = None

    async def run(self) -> None:
        self._leave = anyio.Event()
        try:
            value = await self._cm.__aenter__()
        except BaseException as e:
            _fail(self.entered, e)
            return
        self.entered.set_result(value)
        try:
            await self._leave.wait()
        except BaseException as e:  # the loop ended with the context still open: leave it, shielded
            with anyio.CancelScope(shield=True):
                await self._cm.__aexit__(None, None, None)
            _fail(self.exited, e)
            return
        try:
            self.exited.set_result(await self._cm.__aexit__(*self._exc_info))
        except BaseException as e:
            _fail(self.exited, e)

    def exit(self, etype=None, exc=None, tb=None, *, timeout_s: float | None = None) -> Any:
        """Leave the context (``__aexit__`` with this exception info) and return what it returned."""
        def leave():
            self._exc_info = (etype, exc, tb)
            assert self._leave is not None
            self._leave.set()

        self._loop._post(leave)
        return _wait(self.exited, timeout_s)


class LoopThread:
    """One daemon thread running an anyio event loop (``backend``: "trio" or "asyncio") that runs jobs."""

    def __init__(self, backend: str = "trio", backend_options: dict | None = None, *, name: str = "speckstream-loop"):
        self._started: cf.Future = cf.Future()
        self._posted: deque[tuple[Callable, tuple]] = deque()  # thread-safe appends; drained on the loop
        self._stopping = False
        self._thread = threading.Thread(target=self._main, args=(backend, backend_options or {}), name=name,
                                         daemon=True)
        self._thread.start()
        self._soon = self._started.result()  # the loop's own error if it could not start

    def _main(self, backend: str, options: dict) -> None:
        try:
            anyio.run(self._serve, backend=backend, backend_options=options)
        except BaseException as e:  # the loop failed to start: the caller gets the error
            if not self._started.done():
                self._started.set_exception(e)

    async def _serve(self) -> None:
        """The dispatcher: every posted item runs in a task of its own (a raw "call soon" callback has no task,
        and anyio on asyncio cannot start one from there)."""
        self._wake = anyio.Event()
        async with anyio.create_task_group() as tg:
            self._started.set_result(loop_call_soon())
            while not self._stopping:
                while self._posted:
                    fn, args = self._posted.popleft()
                    tg.start_soon(_run_item, fn, args)
                await self._wake.wait()
                self._wake = anyio.Event()
            tg.cancel_scope.cancel()

    def _wake_up(self) -> None:  # a "call soon" callback on the loop: only sets the dispatcher's event
        self._wake.set()

    def _post(self, fn: Callable, *args) -> None:
        """Run ``fn(*args)`` (plain or async) in a new task on the loop; DeviceClosed once the loop has ended."""
        self._posted.append((fn, args))
        try:
            self._soon(self._wake_up)
        except RuntimeError:
            raise DeviceClosed("the blocking session's event loop has ended") from None

    # ------------------------------------------------------------------ from other threads
    def _refuse_own_thread(self) -> None:
        if threading.current_thread() is self._thread:
            raise DeviceError("a blocking call was made from the runtime's own loop thread (e.g. inside a "
                              "closed_loop callback): it would wait for itself; return instead, or use the "
                              "async Session there")

    def submit(self, fn: Callable, *args) -> _Job:
        """Start ``fn(*args)`` (a plain or an async function) in a task of its own on the loop."""
        self._refuse_own_thread()
        job = _Job(fn, args)
        self._post(_run_job, job)
        return job

    def call(self, fn: Callable, *args) -> Any:
        """Run ``fn(*args)`` on the loop and return its result (or raise its error) in this thread.

        Interrupted while waiting (Ctrl-C), the job is cancelled and given :data:`UNWIND_S` to unwind before the
        interrupt is raised here."""
        job = self.submit(fn, *args)
        try:
            return job.future.result()
        except BaseException:
            if not job.future.done():
                self._cancel(job)
                try:
                    job.future.exception(timeout=UNWIND_S)
                except BaseException:
                    pass  # still unwinding, or a second Ctrl-C: give up waiting, the first interrupt wins
            raise

    def hold(self, cm: Any) -> Held:
        """Enter the async context manager ``cm`` in a task that stays inside it (its value is not needed: the
        callers hold sessions, which enter as themselves)."""
        self._refuse_own_thread()
        held = Held(self, cm)
        self._post(held.run)
        held.entered.result()
        return held

    def stop(self, timeout_s: float = 2.0) -> None:
        """End the loop (cancelling what still runs on it) and join its thread, ``timeout_s`` at most."""
        if self._thread is threading.current_thread():
            return
        try:
            self._post(self._set_stopping)
        except DeviceClosed:
            pass
        self._thread.join(timeout_s)

    def _set_stopping(self) -> None:
        self._stopping = True
        self._wake.set()

    def _cancel(self, job: _Job) -> None:
        try:
            self._post(_cancel_job, job)
        except DeviceClosed:
            pass

# ---------------------------------------------------------------------- on the loop
async def _run_item(fn: Callable, args: tuple) -> None:
    result = fn(*args)
    if inspect.isawaitable(result):
        await result


def _cancel_job(job: _Job) -> None:
    if job.scope is not None:
        job.scope.cancel()


async def _run_job(job: _Job) -> None:
    if not job.future.set_running_or_notify_cancel():
        return
    job.scope = anyio.CancelScope()
    try:
        with job.scope:
            result = job.fn(*job.args)
            if inspect.isawaitable(result):
                result = await result
            job.future.set_result(result)
            return
    except BaseException as e:
        _fail(job.future, e)
        return
    job.future.set_exception(cf.CancelledError())  # the scope was cancelled (the caller was interrupted)


def _fail(future: cf.Future, e: BaseException) -> None:
    """Hand ``e`` to the waiting thread, re-raising a cancellation (the loop is ending) here: the waiter gets
    DeviceClosed instead of the loop's own Cancelled."""
    if isinstance(e, Exception):
        future.set_exception(e)
        return
    future.set_exception(DeviceClosed("the blocking session's event loop ended during this call"))
    raise e




def _wait(future: cf.Future, timeout_s: float | None) -> Any:
    try:
        return future.result(timeout=timeout_s)
    except cf.TimeoutError:
        raise TimeoutError(f"no answer from the runtime's event loop within {timeout_s} s") from None

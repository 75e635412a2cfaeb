"""One OS thread that runs every call to a device, in order (samna has no thread-safety guarantees).

Trio waits for each job without blocking the event loop. A cancelled wait abandons the result, never the
thread; :meth:`DeviceThread.stop` lets the job in progress finish (device reads use short timeouts, so
that is prompt) and joins the thread, so no thread outlives the session.
"""
from __future__ import annotations

import queue
import threading

import trio

__all__ = ['DeviceThread']


class DeviceThread:
    def __init__(self, name: str = "speckstream-device"):
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            fn, args, token, deliver = self._jobs.get()
            try:
                result = ("ok", fn(*args))
            except BaseException as e:  # delivered to the awaiting task
                result = ("err", e)
            try:
                token.run_sync_soon(deliver, result)
            except trio.RunFinishedError:
                pass
            if fn is _STOP:
                return

    async def run(self, fn, *args):
        """Run ``fn(*args)`` on the device thread and return its result (or raise its exception)."""
        if not self._thread.is_alive():
            raise RuntimeError("device thread is stopped")
        send, recv = trio.open_memory_channel(1)

        def deliver(result):
            try:
                send.send_nowait(result)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the waiter was cancelled

        self._jobs.put((fn, args, trio.lowlevel.current_trio_token(), deliver))
        async with recv:
            kind, value = await recv.receive()
        if kind == "err":
            raise value
        return value

    async def stop(self, timeout_s: float = 0.5) -> None:
        """Let the job in progress finish, then end the thread - waiting ``timeout_s`` at most: a samna call
        blocked in C cannot be interrupted, and closing must stay prompt. Such a thread (a daemon) ends when
        the blocked call returns; ``busy_at_stop`` says it happened."""
        self.busy_at_stop = False
        if self._thread.is_alive():
            with trio.CancelScope(shield=True):
                with trio.move_on_after(timeout_s):
                    await self.run(_STOP)
        self._thread.join(timeout=0.05)
        self.busy_at_stop = self._thread.is_alive()


def _STOP() -> None:
    return None

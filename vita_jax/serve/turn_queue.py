"""One request at a time on the accelerator: a first-come first-served queue (asyncio) that tells
each waiter how many requests are ahead of it whenever that number changes."""

import asyncio
import contextlib


class TurnQueue:
    def __init__(self):
        self._waiting = []      # tickets in arrival order
        self._busy = False
        self._changed = asyncio.Condition()

    @property
    def length(self):
        """Requests waiting or running."""
        return len(self._waiting) + int(self._busy)

    @contextlib.asynccontextmanager
    async def turn(self, on_position=None):
        """Hold the accelerator inside the block. `on_position(n)` (async) is awaited with the number
        of requests ahead (n >= 1) each time it changes while this one waits."""
        ticket = object()
        self._waiting.append(ticket)
        holding, reported = False, None
        try:
            async with self._changed:
                while self._busy or self._waiting[0] is not ticket:
                    position = self._waiting.index(ticket) + int(self._busy)
                    if on_position is not None and position != reported:
                        reported = position
                        await on_position(position)
                    await self._changed.wait()
                self._waiting.remove(ticket)
                self._busy = holding = True
            yield
        finally:
            if ticket in self._waiting:  # cancelled while waiting
                self._waiting.remove(ticket)
            async with self._changed:
                if holding:
                    self._busy = False
                self._changed.notify_all()

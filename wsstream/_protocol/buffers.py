"""Spare buffers for large payloads, reused from one frame to the next."""

from __future__ import annotations

import threading

__all__ = ["SPARE_EACH", "SPARE_TOTAL", "spare"]

#: Spare payload buffers kept for reuse, per thread: at most this many bytes
#: in all, none larger than the second figure. A fresh megabyte costs about
#: half a millisecond of page faults when first written on a VM; a reused
#: one, nothing.
SPARE_TOTAL = 8 * 2**20
SPARE_EACH = 4 * 2**20


class _Spares(threading.local):
    """Buffers for large payloads, handed from one frame to the next."""

    def __init__(self) -> None:
        self.buffers: list[bytearray] = []
        self.total = 0

    def take(self, size: int) -> bytearray:
        best = None
        for i, buffer in enumerate(self.buffers):
            if len(buffer) >= size and (best is None or len(buffer) < len(self.buffers[best])):
                best = i
        if best is None:
            return bytearray(size)
        buffer = self.buffers.pop(best)
        self.total -= len(buffer)
        return buffer

    def give(self, buffer: bytearray) -> None:
        if len(buffer) <= SPARE_EACH and self.total + len(buffer) <= SPARE_TOTAL:
            self.buffers.append(buffer)
            self.total += len(buffer)


spare = _Spares()

"""The service's log written from a thread of its own, so that its reader cannot stop the engine.

``logging``'s StreamHandler writes in the thread that logs: the trio thread. When stderr is a
pipe whose reader has stalled (a test that never reads it, a paused pager, a stuck log
shipper), the 64 KiB the pipe holds fill up and the next warning blocks the whole event loop
in write(2): no request is answered, no receipt fiscalized, and SIGINT/SIGTERM are never
acted on (issue 22's http fuzz finding). Here the logging thread only hands the formatted line
to a bounded queue; a writer thread does the write. Past ``capacity`` lines waiting, lines are
dropped and counted, and the count is written once the reader takes lines again.

::

    with LogWriter(sys.stderr) as writer:
        logging.basicConfig(level=logging.INFO, handlers=[writer.handler])
        trio.run(...)
"""

from __future__ import annotations

import io
import logging
import os
import queue
import threading
from logging.handlers import QueueHandler
from types import TracebackType
from typing import TextIO

#: How the service's lines look on stderr.
FORMAT = "kassa: %(levelname)s: %(message)s"
#: Lines that may wait for a slow reader (some 1.2 MB at ~120 bytes a line) before they drop.
CAPACITY = 10_000
#: Seconds the writer gets at the end to write what waits, before the process goes anyway.
FLUSH_SECONDS = 2.0


class _DroppingQueueHandler(QueueHandler):
    """Puts a formatted line on the queue, never waiting: a full queue drops it and counts it,
    and the next line that gets in carries the count, so that it is told where it happened."""

    def __init__(self, lines: queue.Queue[logging.LogRecord | None]) -> None:
        super().__init__(lines)
        self._lock = threading.Lock()  # several threads log (the trio thread, the journal's)
        self._dropped = 0
        #: Lines dropped in all.
        self.dropped_total = 0

    def enqueue(self, record: logging.LogRecord) -> None:
        with self._lock:
            record.kassa_dropped_before = self._dropped  # before the writer can see it
            try:
                self.queue.put_nowait(record)
            except queue.Full:
                self._dropped += 1
                self.dropped_total += 1
            else:
                self._dropped = 0


class LogWriter:
    """The writer thread and the handler that feeds it; see the module docstring."""

    def __init__(
        self, stream: TextIO, capacity: int = CAPACITY, flush_seconds: float = FLUSH_SECONDS
    ) -> None:
        self.stream = stream
        # The writer writes to the file descriptor itself where there is one: blocked in
        # os.write it holds no lock of the stream's, which the interpreter's exit must take.
        try:
            self._fd: int | None = stream.fileno()
        except (AttributeError, OSError, io.UnsupportedOperation):
            self._fd = None
        self._encoding = getattr(stream, "encoding", None) or "utf-8"
        self.flush_seconds = flush_seconds
        self._lines: queue.Queue[logging.LogRecord | None] = queue.Queue(capacity)
        self.handler = _DroppingQueueHandler(self._lines)
        self.handler.setFormatter(logging.Formatter(FORMAT))
        # A daemon: a writer stuck on a reader that never comes back must not keep the
        # process from exiting once the engine has stopped.
        self._thread = threading.Thread(target=self._write, name="kassa-log", daemon=True)

    def waiting(self) -> int:
        """Lines handed over and not yet written."""
        return self._lines.qsize()

    @property
    def dropped_total(self) -> int:
        """Lines dropped in all because the queue was full."""
        return self.handler.dropped_total

    def _write(self) -> None:
        while True:
            record = self._lines.get()
            if record is None:
                return
            dropped = getattr(record, "kassa_dropped_before", 0)
            text = f"{record.getMessage()}\n"
            if dropped:
                text = f"kassa: WARNING: {dropped} log line(s) dropped: stderr was not read\n{text}"
            try:
                self._put(text)
            except (OSError, ValueError):  # the reader is gone, or the stream closed
                continue

    def _put(self, text: str) -> None:
        if self._fd is None:
            self.stream.write(text)
            self.stream.flush()
            return
        data = text.encode(self._encoding, "backslashreplace")
        while data:
            data = data[os.write(self._fd, data) :]

    def __enter__(self) -> LogWriter:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Write what waits, for at most ``flush_seconds``; a stalled reader loses the rest."""
        try:
            self._lines.put(None, timeout=self.flush_seconds)
        except queue.Full:
            return
        self._thread.join(self.flush_seconds)

"""The service's log writer: a stalled reader of stderr costs log lines, never the logging
thread's time, and the lines it cost are counted where the reader finds them."""

from __future__ import annotations

import fcntl
import logging
import os
import re
import time

from engine.log_writer import LogWriter

#: fcntl's F_SETPIPE_SZ (Linux), which Python 3.11's fcntl does not name.
F_SETPIPE_SZ = 1031


def _read_until(fd: int, wanted: bytes, seconds: float) -> bytes:
    """What the pipe gives until ``wanted`` is in it, for at most ``seconds``."""
    os.set_blocking(fd, False)
    got = b""
    deadline = time.monotonic() + seconds
    while wanted not in got and time.monotonic() < deadline:
        try:
            got += os.read(fd, 65536)
        except BlockingIOError:
            time.sleep(0.01)
    return got


def test_a_stalled_reader_drops_lines_without_blocking_the_logger_and_is_told() -> None:
    read, write = os.pipe()
    fcntl.fcntl(write, F_SETPIPE_SZ, 4096)  # the smallest pipe: a few lines fill it
    logger = logging.getLogger("kassa.test.log_writer")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        with os.fdopen(write, "w", closefd=False) as stream:
            writer = LogWriter(stream, capacity=10, flush_seconds=0.5)
            with writer:
                logger.addHandler(writer.handler)
                started = time.monotonic()
                for i in range(200):  # 200 KB against a 4 KiB pipe and 10 lines of queue
                    logger.warning("line %d %s", i, "x" * 1000)
                took = time.monotonic() - started
                assert took < 2.0, took  # a blocking write would have stopped at the 5th line
                assert writer.dropped_total >= 150, writer.dropped_total
                # The reader comes back: what waited arrives, each count of dropped lines
                # where they were dropped, and every line is either written or counted.
                waited = b""
                for _ in range(100):  # 10 lines wait at most
                    if not writer.waiting():
                        break
                    waited += _read_until(read, b"\n", 1)
                logger.warning("after")
                got = (waited + _read_until(read, b"after\n", 5)).decode()
                assert got.startswith("kassa: WARNING: line 0 "), got[:80]
                assert got.endswith("kassa: WARNING: after\n"), got[-300:]
                told = re.findall(r"kassa: WARNING: (\d+) log line\(s\) dropped: stderr was", got)
                assert sum(map(int, told)) == writer.dropped_total, (told, writer.dropped_total)
                written = re.findall(r"kassa: WARNING: line (\d+) x", got)
                assert len(written) + writer.dropped_total == 200, (len(written), told)
                assert written == sorted(written, key=int), written
                logger.removeHandler(writer.handler)
    finally:
        os.close(read)
        os.close(write)


def test_the_end_waits_a_bounded_time_for_a_reader_that_never_comes() -> None:
    read, write = os.pipe()
    fcntl.fcntl(write, F_SETPIPE_SZ, 4096)
    logger = logging.getLogger("kassa.test.log_writer.end")
    logger.propagate = False
    try:
        with os.fdopen(write, "w", closefd=False) as stream:
            writer = LogWriter(stream, capacity=100, flush_seconds=0.3)
            with writer:
                logger.addHandler(writer.handler)
                for i in range(50):
                    logger.warning("line %d %s", i, "x" * 1000)
                logger.removeHandler(writer.handler)
                started = time.monotonic()
            took = time.monotonic() - started
            assert took < 1.5, took  # 0.3 s to hand over the end, 0.3 s to join: not forever
            os.close(read)  # the writer's os.write fails now (EPIPE), and it reaches the end
            read = -1
            writer._thread.join(5)
            assert not writer._thread.is_alive()
    finally:
        if read >= 0:
            os.close(read)
        os.close(write)

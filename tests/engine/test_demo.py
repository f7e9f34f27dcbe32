"""``kassa demo`` as ``make demo`` runs it: a real process, the embedded end-to-end."""

from __future__ import annotations

import os
import re
import subprocess
from datetime import datetime

from tests.engine.test_cli_tlv import KASSA, kassa

#: FD, ФП and the QR string of a fiscalized job's row.
QR_ROW = re.compile(r"\s\d+\s+\d+\s+t=\d{8}T\d{4}&s=[\d.]+&fn=\d{16}&i=\d+&fp=\d+&n=\d")


def test_the_demo_fiscalizes_the_batch_and_reconciles() -> None:
    done = kassa("demo")
    out = done.stdout.decode()
    assert done.returncode == 0, (out, done.stderr.decode())
    assert not done.stderr
    rows = {line.split()[0] + " " + line.split()[1]: line for line in out.splitlines() if line}
    for job in [
        "order-1001 card",
        "order-1002 marked",
        "order-1003 marked",
        "order-1001-refund refund",
        "correction-0301 correction",
        "order-1004-prepay prepayment",
        "order-1004-final settlement",
        "order-1007 every",
    ]:
        assert QR_ROW.search(rows[job]), rows[job]
    refused = rows["order-1006 refused"]  # its code's check fails in the ФН: nothing signed
    assert not QR_ROW.search(refused)
    assert "failed: the register refused: items[0].marking: the ФН's check" in refused
    assert "nothing was fiscalized" in refused
    assert "same job as before: fiscalized" in rows["order-1001 duplicate"]
    assert rows["order-1001 duplicate"].split()[2] == rows["order-1001 card"].split()[3]  # job
    assert "refused (validation): total:" in rows["order-1005 invalid"]
    assert out.count("reconciliation: match") == 2
    assert "mismatch" not in out
    # The report's period is the one it covers, from its first shift, in Moscow time.
    moment = r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+03:00)"
    period = re.search(rf"^period: {moment} … {moment}$", out, re.MULTILINE)
    assert period is not None, out
    start, end = (datetime.fromisoformat(m) for m in period.groups())
    opened = re.findall(rf"opened {moment}, closed {moment}", out)
    assert len(opened) == 2 and start == min(datetime.fromisoformat(o) for o, _ in opened)
    assert start <= end and "1970" not in out and "UTC" not in out


def test_a_reader_that_goes_away_ends_the_demo_quietly() -> None:
    """``kassa demo | head -3``: no traceback, the status of a tool whose pipe closed."""
    unbuffered = {**os.environ, "PYTHONUNBUFFERED": "1"}  # the first line comes at once
    with subprocess.Popen(
        [KASSA, "demo"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=unbuffered
    ) as run:
        assert run.stdout is not None and run.stderr is not None
        assert run.stdout.readline().startswith(b"journal: ")
        run.stdout.close()
        status = run.wait(timeout=60)
        assert (status, run.stderr.read()) == (141, b"")

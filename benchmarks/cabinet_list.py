"""How long one page of the cabinet's receipts list takes on a large journal.

``python -m benchmarks.cabinet_list [N]`` fills a fresh journal with N signed jobs of one tenant
(and N/10 of another) straight through SQLite, then times :meth:`SqliteJournal.receipts` for the
first page, a page deep in the list, and each filter, as the cabinet asks for them.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import trio

from engine.engine import encode_body
from engine.journal import ReceiptQuery, SqliteJournal, open_checked
from engine.samples import card_sale


def fill(path: Path, count: int) -> float:
    """``count`` fiscalized jobs of tenant ``shop`` a second apart, and a tenth as many of
    ``other``; the created time of the middle job of ``shop``."""
    connection = open_checked(path)
    start = time.time() - count
    body = encode_body(card_sale(), "main")
    rows, results = [], []
    for i in range(count + count // 10):
        tenant = "shop" if i < count else "other"
        job_id = hashlib.sha256(str(i).encode()).hexdigest()[:32]
        price = 100_000 + i % 1000
        data = json.loads(body)
        data["receipt"]["total"] = price
        text = json.dumps(data, sort_keys=True).encode()
        created = start + i
        rows.append((job_id, tenant, f"order-{i}", text, b"", "fiscalized", created, created))
        results.append((job_id, f"kkt-{tenant}", f"fn-{tenant}", i + 1, created))
    connection.execute("BEGIN")
    connection.executemany(
        "INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?, NULL)", rows
    )
    connection.executemany(
        "INSERT INTO results VALUES (?, ?, ?, ?, x'000000000000', 0, '', x'', ?)", results
    )
    connection.execute("COMMIT")
    connection.close()
    return start + count / 2


async def measure(count: int) -> list[tuple[str, float]]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "journal.db"
        middle = fill(path, count)
        queries = {
            "first page": ReceiptQuery(limit=51),
            "page at the middle": ReceiptQuery(before=(middle, "f" * 32), limit=51),
            "by date (one day)": ReceiptQuery(start=middle - 86400, end=middle, limit=51),
            "by status failed (none)": ReceiptQuery(state="failed", limit=51),
            "by external_id": ReceiptQuery(external_id=f"order-{count // 3}", limit=51),
            "by sum (1 in 1000)": ReceiptQuery(total=100_500, limit=51),
            "by FD": ReceiptQuery(fd_number=count // 2, limit=51),
        }
        out = []
        async with SqliteJournal.open(path) as journal:
            for name, query in queries.items():
                await journal.receipts("shop", query)  # warm the page cache
                began = time.perf_counter()
                rounds = 5
                for _ in range(rounds):
                    await journal.receipts("shop", query)
                out.append((name, (time.perf_counter() - began) / rounds))
        return out


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    for name, seconds in trio.run(measure, count):
        print(f"{name:28} {seconds * 1000:8.1f} ms")


if __name__ == "__main__":
    main()

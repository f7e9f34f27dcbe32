"""Receipts fiscalized by the emulator through the HTTP door, for the renderers to draw."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs

from engine import samples
from engine.journal import JobState
from engine.reports import ReceiptView
from protocols.documents.model import Receipt
from tests.http.conftest import Served, serving

#: Ends with a hostile name: it must come out escaped, never as markup.
HOSTILE = "<script>alert(\"x\")</script><img src=x onerror=alert(1)> & 'q'"


def kinds() -> dict[str, Receipt]:
    """A receipt of each kind: a sale at every VAT rate, marked goods, a refund, a correction."""
    sale = samples.every_rate()
    hostile = samples.item(HOSTILE, 1_000)
    sale = attrs.evolve(sale, items=(*sale.items, hostile), total=sale.total + hostile.sum)
    sale = attrs.evolve(sale, payments=attrs.evolve(sale.payments, electronic=sale.total))
    return {
        "sale": sale,
        "marked": samples.marked_sale(),
        "refund": samples.refund(samples.card_sale()),
        "correction": samples.correction(),
    }


@asynccontextmanager
async def fiscalized(
    folder: Path, **settings: Any
) -> AsyncIterator[tuple[Served, dict[str, ReceiptView]]]:
    """The door over an emulated register, with one receipt of each kind fiscalized."""
    async with serving(folder, **settings) as served:
        views = {}
        for name, receipt in kinds().items():
            job = await served.engine.submit("shop", f"render-{name}", receipt, group="main")
            done = await served.engine.wait("shop", job.id)
            assert done.state is JobState.FISCALIZED, (name, done.error)
            view = await served.engine.receipt_view("shop", job.id)
            assert view is not None
            views[name] = view
        yield served, views

"""The tax tables of every register family Kassa speaks (таблицы налогов), by protocol.

A register's table is part of its configuration: ``tax_table`` in kassa.toml for the engine,
``--tax-table`` for the emulator. Both read the names here, so that a name means the same
table on either side of the wire.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from protocols.atol import taxes as atol
from protocols.documents.vat import TaxTable
from protocols.shtrih import taxes as shtrih

__all__ = ["DEFAULT_TAX_TABLES", "TAX_TABLES"]

#: Each protocol's tax tables by name.
TAX_TABLES: Mapping[str, Mapping[str, TaxTable]] = MappingProxyType(
    {"shtrih": shtrih.TABLES, "atol": atol.TABLES}
)
#: The table a protocol's register has unless configured: its 2026 firmware's.
DEFAULT_TAX_TABLES: Mapping[str, TaxTable] = MappingProxyType(
    {"shtrih": shtrih.DEFAULT, "atol": atol.DEFAULT}
)

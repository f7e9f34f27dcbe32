"""Shtrih-M tax tables (таблица налогов ККТ «Штрих-М»): the FF46h tax byte of each 1199 rate.

FF46h (операция v2) names a line's rate with one byte. The six rates FFD 1.05 knew are one
bit each, bit 0 = group 1 … bit 5 = group 6 (registers.md §1.4). Firmware of 2025–2026 adds
the 2025 rates as bit patterns with bit 7 set, and 22 % and 22/122 as two more codes. The
codes are the manufacturer's own driver's: shtrih-m/javapos_shtrih@af0a237b (18.02.2026,
"Changed VAT rates"), ``FiscalPrinterImpl.getVatCodeShtrih`` and ``getVatCodeShtrihNano``,
whose JavaPOS rate order is 1199's. The two tables differ only in 22 % and 22/122.

Which table a register has is part of its configuration (``tax_table`` in kassa.toml, and
``--tax-table`` of ``kassa emulator serve``); :data:`DEFAULT` is a register with 2026 firmware.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from protocols.documents.vat import TaxTable
from protocols.tlv.enums import VatRate

__all__ = ["DEFAULT", "FIRMWARE_2026", "LEGACY", "NANO_2026", "TABLES"]

_SIX_GROUPS: dict[int, int] = {
    VatRate.VAT20: 0x01,
    VatRate.VAT10: 0x02,
    VatRate.VAT0: 0x04,
    VatRate.NONE: 0x08,
    VatRate.VAT120: 0x10,
    VatRate.VAT110: 0x20,
}
_RATES_OF_2025: dict[int, int] = {
    VatRate.VAT5: 0x81,
    VatRate.VAT7: 0x82,
    VatRate.VAT105: 0x84,
    VatRate.VAT107: 0x88,
}

#: Firmware before the 2025 rates: the six groups of FFD 1.05 and 1.2.
LEGACY = TaxTable("legacy", _SIX_GROUPS)
#: Shtrih-M registers with 2026 firmware (getVatCodeShtrih).
FIRMWARE_2026 = TaxTable(
    "2026", {**_SIX_GROUPS, **_RATES_OF_2025, VatRate.VAT22: 0xCB, VatRate.VAT122: 0xCC}
)
#: Shtrih-Nano registers with 2026 firmware (getVatCodeShtrihNano).
NANO_2026 = TaxTable(
    "nano-2026", {**_SIX_GROUPS, **_RATES_OF_2025, VatRate.VAT22: 0x90, VatRate.VAT122: 0xA0}
)
DEFAULT = FIRMWARE_2026
#: Every table by its name in the configuration.
TABLES: Mapping[str, TaxTable] = MappingProxyType(
    {table.name: table for table in (FIRMWARE_2026, NANO_2026, LEGACY)}
)

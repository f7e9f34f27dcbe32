"""ATOL tax tables (налоги ККТ АТОЛ): the E6h tax code of each 1199 rate.

E6h (регистрация позиции) names a line's rate with one byte, 0 meaning the department's
rate. ATOL numbers its rates in 1199's order (registers.md §2.3; the emulator's personality
says the same), so a code is the rate's 1199 code; a firmware knows the codes up to the last
rate it was built for. That the 2026 firmware takes 11 and 12 for 22 % and 22/122 is assumed
from that order: no public source gives ATOL's wire bytes for them.

Which table a register has is part of its configuration (``tax_table`` in kassa.toml, and
``--tax-table`` of ``kassa emulator serve``); :data:`DEFAULT` is a register with 2026 firmware.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from protocols.documents.vat import TaxTable
from protocols.tlv.enums import VatRate

__all__ = ["DEFAULT", "FIRMWARE_2025", "FIRMWARE_2026", "LEGACY", "TABLES"]


def _up_to(last: VatRate) -> dict[int, int]:
    return {int(rate): int(rate) for rate in VatRate if rate <= last}


#: Firmware before the 2025 rates: 20 %, 10 %, 20/120, 10/110, 0 % and no VAT.
LEGACY = TaxTable("legacy", _up_to(VatRate.NONE))
#: Firmware of 2025: the 5 % and 7 % rates and their calculated forms too.
FIRMWARE_2025 = TaxTable("2025", _up_to(VatRate.VAT107))
#: Firmware of 2026: 22 % and 22/122 too.
FIRMWARE_2026 = TaxTable("2026", _up_to(VatRate.VAT122))
DEFAULT = FIRMWARE_2026
#: Every table by its name in the configuration.
TABLES: Mapping[str, TaxTable] = MappingProxyType(
    {table.name: table for table in (FIRMWARE_2026, FIRMWARE_2025, LEGACY)}
)

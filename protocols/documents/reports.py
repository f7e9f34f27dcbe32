"""The ФН's other documents: registration (1, 11), shift open (2) and close (5), status (21).

The emulator's ФН forms them and the engine reads them back (shift keeping, reports,
recovery), so they are values here with the same tag mapping as receipts. Each carries the
fiscal header the ФН adds: 1040 FD number, 1041 ФН number, 1037 registration number, 1012
time and 1077 the fiscal sign. The counters (1157, 1194) keep the per-operation totals that
shift close reports; their VAT breakdowns are not modelled.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeAlias

import attrs

from protocols.documents.ffd import DocumentError, block_from_tags, block_to_tags
from protocols.documents.model import tag
from protocols.tlv import TagMap, decode_document, encode_document


@attrs.frozen
class OperationCounters:
    """1129–1132 счётчики операций of one operation type: count and sums (kopecks)."""

    count: int = tag(1135, default=0)  # количество чеков
    total: int = tag(1201, default=0)  # итоговая сумма
    cash: int = tag(1136, default=0)
    electronic: int = tag(1138, default=0)
    prepaid: int = tag(1218, default=0)
    credit: int = tag(1219, default=0)
    provision: int = tag(1220, default=0)


@attrs.frozen
class Counters:
    """1194 счётчики итогов смены / 1157 счётчики итогов ФН."""

    receipts: int = tag(1134, default=0)  # количество чеков и чеков коррекции
    sell: OperationCounters | None = tag(1129, default=None, block=OperationCounters)
    sell_refund: OperationCounters | None = tag(1130, default=None, block=OperationCounters)
    buy: OperationCounters | None = tag(1131, default=None, block=OperationCounters)
    buy_refund: OperationCounters | None = tag(1132, default=None, block=OperationCounters)


@attrs.frozen
class RegistrationReport:
    """отчёт о регистрации (1) / об изменении параметров регистрации (11)."""

    user_inn: str = tag(1018)  # ИНН пользователя
    user: str = tag(1048)  # наименование пользователя
    registration_number: str = tag(1037)
    fn_number: str = tag(1041)
    kkt_serial: str = tag(1013)  # заводской номер ККТ
    tax_systems: int = tag(1062)  # TaxSystem bits
    ffd_version: int = tag(1209, default=4)
    kkt_ffd_version: int = tag(1189, default=4)
    kkt_version: str = tag(1188, default="1.0")
    place: str | None = tag(1187, default=None)
    address: str | None = tag(1009, default=None)
    cashier: str | None = tag(1021, default=None)
    ofd_inn: str | None = tag(1017, default=None)
    ofd_name: str | None = tag(1046, default=None)
    offline: int = tag(1002, default=0)  # автономный режим
    auto_mode: int = tag(1001, default=0)
    encryption: int = tag(1056, default=0)
    internet_only: int = tag(1108, default=0)
    services_only: int = tag(1109, default=0)
    bso: int = tag(1110, default=0)
    usage: int | None = tag(1290, default=None)  # признаки условий применения ККТ
    reasons: tuple[int, ...] = tag(1205, default=())  # коды причин перерегистрации (11)
    fd_number: int | None = tag(1040, default=None)
    time: datetime | None = tag(1012, default=None)
    fiscal_sign: bytes | None = tag(1077, default=None)


@attrs.frozen
class OpenShiftReport:
    """отчёт об открытии смены (2)."""

    user_inn: str = tag(1018)
    shift_number: int = tag(1038)
    registration_number: str = tag(1037)
    fn_number: str = tag(1041)
    ffd_version: int = tag(1209, default=4)
    user: str | None = tag(1048, default=None)
    cashier: str | None = tag(1021, default=None)
    cashier_inn: str | None = tag(1203, default=None)
    place: str | None = tag(1187, default=None)
    address: str | None = tag(1009, default=None)
    kkt_version: str | None = tag(1188, default=None)
    kkt_ffd_version: int | None = tag(1189, default=None)
    fn_replace_soon: int | None = tag(1050, default=None)  # признак исчерпания ресурса ФН
    fn_replace_now: int | None = tag(1051, default=None)  # необходимость срочной замены ФН
    fn_memory_full: int | None = tag(1052, default=None)  # переполнение памяти ФН
    ofd_timeout: int | None = tag(1053, default=None)  # превышено время ожидания ответа ОФД
    fd_number: int | None = tag(1040, default=None)
    time: datetime | None = tag(1012, default=None)
    fiscal_sign: bytes | None = tag(1077, default=None)


@attrs.frozen
class CloseShiftReport:
    """отчёт о закрытии смены (5)."""

    user_inn: str = tag(1018)
    shift_number: int = tag(1038)
    registration_number: str = tag(1037)
    fn_number: str = tag(1041)
    receipts: int = tag(1118)  # количество кассовых чеков за смену
    documents: int = tag(1111)  # общее количество ФД за смену
    unsent: int = tag(1097)  # количество непереданных ФД
    ffd_version: int = tag(1209, default=4)
    first_unsent_time: datetime | None = tag(1098, default=None)
    key_days_left: int | None = tag(1213, default=None)  # ресурс ключей ФП, days
    shift_counters: Counters | None = tag(1194, default=None, block=Counters)
    fn_counters: Counters | None = tag(1157, default=None, block=Counters)
    cashier: str | None = tag(1021, default=None)
    cashier_inn: str | None = tag(1203, default=None)
    fn_replace_soon: int | None = tag(1050, default=None)
    fn_replace_now: int | None = tag(1051, default=None)
    fn_memory_full: int | None = tag(1052, default=None)
    ofd_timeout: int | None = tag(1053, default=None)
    fd_number: int | None = tag(1040, default=None)
    time: datetime | None = tag(1012, default=None)
    fiscal_sign: bytes | None = tag(1077, default=None)


@attrs.frozen
class StatusReport:
    """отчёт о текущем состоянии расчётов (21)."""

    user_inn: str = tag(1018)
    registration_number: str = tag(1037)
    fn_number: str = tag(1041)
    unsent: int = tag(1097)  # количество непереданных ФД
    first_unsent_number: int = tag(1116)  # номер первого непереданного ФД
    ffd_version: int = tag(1209, default=4)
    offline: int = tag(1002, default=0)
    first_unsent_time: datetime | None = tag(1098, default=None)
    shift_number: int | None = tag(1038, default=None)
    fn_counters: Counters | None = tag(1157, default=None, block=Counters)
    fd_number: int | None = tag(1040, default=None)
    time: datetime | None = tag(1012, default=None)
    fiscal_sign: bytes | None = tag(1077, default=None)


Report: TypeAlias = RegistrationReport | OpenShiftReport | CloseShiftReport | StatusReport

#: Document code → the report class that models it.
REPORT_CLASSES: dict[int, type[Report]] = {
    1: RegistrationReport,
    11: RegistrationReport,
    2: OpenShiftReport,
    5: CloseShiftReport,
    21: StatusReport,
}


def report_to_tags(report: Report) -> TagMap:
    """The report's tags in field order (the ФН's own order is kept by the document bytes)."""
    return block_to_tags(report)


def encode_report(code: int, report: Report) -> bytes:
    """The report as one FFD TLV document; ``code`` must be one its class models."""
    if not isinstance(report, REPORT_CLASSES.get(code, ())):
        raise DocumentError(f"a {type(report).__name__} is not document {code}", str(code))
    return encode_document(code, report_to_tags(report))


def report_from_tags(code: int, fields: Mapping[int, Any]) -> Report:
    """The model of a report document from its tags."""
    cls = REPORT_CLASSES.get(code)
    if cls is None:
        raise DocumentError(f"document {code} is not a report", str(code))
    return block_from_tags(cls, fields, str(code))


def decode_report(wire: bytes) -> Report:
    """A report document from its TLV bytes."""
    document = decode_document(wire)
    return report_from_tags(document.code, document.fields)

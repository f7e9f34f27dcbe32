"""Ingress formats: ATOL Online v5 and KOMTET v2 request JSON mapped onto the one receipt model.

Existing CMS modules and payment systems already speak these formats, so they can submit to
Kassa unchanged. Each format has a pure ``parse`` (body → a request value holding a
:class:`~protocols.documents.model.Receipt`), a ``to`` for the way back, and a ``check`` that
runs parsing and :func:`protocols.validation.validate` together and answers in the format's own
error codes. Problems carry JSON paths of the body (``receipt.items[2].price``); one error type,
:class:`IngressError`, carries every problem of a body at once.

Read bodies with :func:`load_json` (fractions become ``Decimal``, never float) and write them
with :func:`dump_json`.
"""

from __future__ import annotations

from protocols.ingress._common import INGRESS_CODES, IngressError, dump_json, load_json
from protocols.ingress.atol_v5 import (
    AtolProblem,
    AtolRequest,
    atol_code,
    atol_error,
    check_atol_v5,
    parse_atol_v5,
    to_atol_v5,
)
from protocols.ingress.komtet import (
    KomtetProblem,
    KomtetTask,
    check_komtet_task,
    komtet_error,
    parse_komtet_task,
    to_komtet_task,
)

__all__ = [
    "INGRESS_CODES",
    "AtolProblem",
    "AtolRequest",
    "IngressError",
    "KomtetProblem",
    "KomtetTask",
    "atol_code",
    "atol_error",
    "check_atol_v5",
    "check_komtet_task",
    "dump_json",
    "komtet_error",
    "load_json",
    "parse_atol_v5",
    "parse_komtet_task",
    "to_atol_v5",
    "to_komtet_task",
]

"""The OpenAPI 3.1 document of the HTTP door, served at ``/openapi.json`` and kept in docs/.

Each API contributes its paths and components (:func:`atol_document` for ATOL v5); the door
serves their union. ``python -m engine.http.openapi > docs/openapi.json`` writes the copy in
docs/, which a test keeps equal to what a live server serves.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

TITLE = "Kassa HTTP door"
VERSION = "1.0.0"


def document(parts: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The whole document: every API's paths and components, merged."""
    paths: dict[str, Any] = {}
    components: dict[str, dict[str, Any]] = {}
    for part in parts:
        for path, item in part.get("paths", {}).items():
            if path in paths:
                raise ValueError(f"two APIs describe {path}")
            paths[path] = item
        for section, entries in part.get("components", {}).items():
            target = components.setdefault(section, {})
            for name, entry in entries.items():
                if name in target and target[name] != entry:
                    raise ValueError(f"two APIs define components.{section}.{name} differently")
                target[name] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": VERSION,
            "description": "Kassa's HTTP front door: APIs that existing cash register clients "
            "already speak, over one engine (README.md, HTTP).",
        },
        "paths": paths,
        "components": components,
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: Mapping[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_MONEY = {"type": "number", "minimum": 0, "description": "roubles, at most 2 decimals"}
_ATOL_ITEM = {
    "type": "object",
    "required": ["name", "price", "quantity", "sum", "payment_method", "payment_object", "vat"],
    "properties": {
        "name": {"type": "string", "maxLength": 128},
        "price": _MONEY,
        "quantity": {"type": "number", "minimum": 0},
        "measure": {"type": "integer"},
        "sum": _MONEY,
        "payment_method": {
            "enum": [
                "full_prepayment",
                "prepayment",
                "advance",
                "full_payment",
                "partial_payment",
                "credit",
                "credit_payment",
            ]
        },
        "payment_object": {"type": ["integer", "string"]},
        "vat": {
            "type": "object",
            "required": ["type"],
            "properties": {
                "type": {
                    "enum": [
                        "none",
                        "vat0",
                        "vat5",
                        "vat7",
                        "vat10",
                        "vat20",
                        "vat22",
                        "vat105",
                        "vat107",
                        "vat110",
                        "vat120",
                        "vat122",
                    ]
                },
                "sum": _MONEY,
            },
        },
        "mark_code": {"type": "object"},
    },
}
_ATOL_RECEIPT = {
    "type": "object",
    "required": ["company", "items", "payments", "total"],
    "properties": {
        "client": {"type": "object"},
        "company": {
            "type": "object",
            "required": ["email", "inn", "payment_address"],
            "properties": {
                "email": {"type": "string"},
                "sno": {
                    "enum": ["osn", "usn_income", "usn_income_outcome", "envd", "esn", "patent"]
                },
                "inn": {"type": "string"},
                "payment_address": {"type": "string", "maxLength": 256},
                "location": {"type": "string"},
            },
        },
        "items": {"type": "array", "minItems": 1, "maxItems": 100, "items": _ref("AtolItem")},
        "payments": {
            "type": "array",
            "minItems": 1,
            "maxItems": 10,
            "items": {
                "type": "object",
                "required": ["type", "sum"],
                "properties": {"type": {"type": "integer"}, "sum": _MONEY},
            },
        },
        "vats": {"type": "array", "maxItems": 6, "items": {"type": "object"}},
        "total": _MONEY,
        "cashier": {"type": "string", "maxLength": 64},
        "correction_info": {
            "type": "object",
            "description": "corrections only (the body's key is then correction)",
            "properties": {
                "type": {"enum": ["self", "instruction"]},
                "base_date": {"type": "string", "description": "dd.mm.yyyy"},
                "base_number": {"type": "string", "maxLength": 32},
            },
        },
    },
}
_ATOL_REQUEST = {
    "type": "object",
    "required": ["external_id", "timestamp"],
    "description": "The body ATOL documents for the operation: receipt for sell, sell_refund, "
    "buy and buy_refund; correction for the *_correction operations.",
    "properties": {
        "external_id": {"type": "string", "minLength": 1, "maxLength": 128},
        "timestamp": {"type": "string", "description": "dd.mm.yyyy HH:MM:SS"},
        "service": {
            "type": "object",
            "properties": {"callback_url": {"type": "string", "maxLength": 256}},
        },
        "ism_optional": {"type": "boolean"},
        "receipt": _ref("AtolReceipt"),
        "correction": _ref("AtolReceipt"),
    },
}
_ATOL_ERROR = {
    "type": ["object", "null"],
    "required": ["error_id", "code", "text", "type"],
    "properties": {
        "error_id": {"type": "string"},
        "code": {"type": "integer"},
        "text": {"type": "string", "description": "names the fields at fault"},
        "type": {"enum": ["system", "agent", "driver", "timeout", "unknown"]},
    },
}
_STAMP = {"type": "string", "description": "dd.mm.yyyy HH:MM:SS, the tenant's local time"}
_ATOL_OPERATION = {
    "type": "object",
    "required": ["uuid", "status", "error", "timestamp"],
    "properties": {
        "uuid": {"type": ["string", "null"]},
        "status": {"enum": ["wait", "done", "fail"]},
        "error": _ref("AtolError"),
        "timestamp": _STAMP,
    },
}
_ATOL_TOKEN = {
    "type": "object",
    "required": ["error", "token", "timestamp"],
    "properties": {
        "error": _ref("AtolError"),
        "token": {"type": ["string", "null"]},
        "timestamp": _STAMP,
    },
}
_ATOL_PAYLOAD = {
    "type": ["object", "null"],
    "properties": {
        "total": {"type": "number"},
        "fns_site": {"type": "string"},
        "fn_number": {"type": "string"},
        "shift_number": {"type": "integer"},
        "receipt_datetime": {"type": "string"},
        "fiscal_receipt_number": {"type": "integer"},
        "fiscal_document_number": {"type": "integer"},
        "ecr_registration_number": {"type": "string"},
        "fiscal_document_attribute": {"type": "integer"},
        "ofd_inn": {"type": "string"},
    },
}
_ATOL_REPORT = {
    "type": "object",
    "required": ["uuid", "status", "error", "payload", "timestamp"],
    "properties": {
        "uuid": {"type": ["string", "null"]},
        "status": {"enum": ["wait", "done", "fail"]},
        "error": _ref("AtolError"),
        "payload": _ref("AtolPayload"),
        "timestamp": _STAMP,
        "group_code": {"type": "string"},
        "daemon_code": {"type": "string"},
        "device_code": {"type": "string"},
        "external_id": {"type": "string"},
        "callback_url": {"type": "string"},
        "callback": {
            "type": "object",
            "description": "Kassa's: how the job's callback went, when it has one",
            "properties": {
                "state": {"enum": ["pending", "delivered", "dead"]},
                "attempts": {"type": "integer"},
                "last_error": {"type": ["string", "null"]},
            },
        },
    },
}
_TOKEN_HEADER = {
    "name": "Token",
    "in": "header",
    "required": True,
    "schema": {"type": "string"},
    "description": "from getToken (a token query parameter is taken too)",
}
_GROUP = {"name": "group_code", "in": "path", "required": True, "schema": {"type": "string"}}
_TEXT = {"type": "string", "minLength": 1}
_RETRY = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}


def _refusals(shape: str, *codes: int) -> dict[str, Any]:
    texts = {
        400: "refused: the error's text names the fields at fault",
        401: "no, expired or wrong token (10, 11), wrong login (12) or group (20)",
        413: "the body is over the service's limit (40), unread",
        415: "not application/json (41)",
        429: "over the tenant's rate or queue (0); wait Retry-After seconds",
        500: "a fault of Kassa's own (50)",
        503: "the engine cannot take jobs now; wait Retry-After seconds",
    }
    out: dict[str, Any] = {}
    for code in codes:
        response = _json(_ref(shape), texts[code])
        if code in (429, 503):
            response["headers"] = _RETRY
        out[str(code)] = response
    return out


def atol_document() -> dict[str, Any]:
    """The ATOL Online v5-compatible API's part (engine/http/atol.py)."""
    prefix = "/possystem/v5"
    token_body = {
        "type": "object",
        "required": ["login", "pass"],
        "properties": {
            "login": _TEXT,
            "pass": _TEXT,
            "source": {"type": "string"},
        },
    }
    return {
        "paths": {
            f"{prefix}/getToken": {
                "post": {
                    "summary": "ATOL v5: a token for 24 hours",
                    "operationId": "atolGetToken",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": token_body}},
                    },
                    "responses": {
                        "200": _json(_ref("AtolTokenResponse"), "the token"),
                        **_refusals("AtolTokenResponse", 400, 401, 413, 415, 429, 500),
                    },
                },
                "get": {
                    "summary": "ATOL v5: a token for 24 hours, asked as older clients do",
                    "operationId": "atolGetTokenByQuery",
                    "parameters": [
                        {"name": "login", "in": "query", "required": True, "schema": _TEXT},
                        {"name": "pass", "in": "query", "required": True, "schema": _TEXT},
                    ],
                    "responses": {
                        "200": _json(_ref("AtolTokenResponse"), "the token"),
                        **_refusals("AtolTokenResponse", 400, 401, 429, 500),
                    },
                },
            },
            f"{prefix}/{{group_code}}/{{operation}}": {
                "post": {
                    "summary": "ATOL v5: register a receipt or a correction",
                    "operationId": "atolRegister",
                    "parameters": [
                        _TOKEN_HEADER,
                        _GROUP,
                        {
                            "name": "operation",
                            "in": "path",
                            "required": True,
                            "schema": {
                                "enum": [
                                    "sell",
                                    "sell_refund",
                                    "buy",
                                    "buy_refund",
                                    "sell_correction",
                                    "sell_refund_correction",
                                    "buy_correction",
                                    "buy_refund_correction",
                                ]
                            },
                        },
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("AtolRequest")}},
                    },
                    "responses": {
                        "200": _json(_ref("AtolOperationResponse"), "journaled: status wait"),
                        **_refusals("AtolOperationResponse", 400, 401, 413, 415, 429, 500, 503),
                    },
                },
            },
            f"{prefix}/{{group_code}}/report/{{uuid}}": {
                "get": {
                    "summary": "ATOL v5: a document's state (the callback's body too)",
                    "operationId": "atolReport",
                    "parameters": [
                        _TOKEN_HEADER,
                        _GROUP,
                        {
                            "name": "uuid",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "format": "uuid"},
                        },
                    ],
                    "responses": {
                        "200": _json(_ref("AtolReport"), "the report"),
                        **_refusals("AtolOperationResponse", 400, 401, 429, 500, 503),
                    },
                },
            },
        },
        "components": {
            "schemas": {
                "AtolError": _ATOL_ERROR,
                "AtolItem": _ATOL_ITEM,
                "AtolReceipt": _ATOL_RECEIPT,
                "AtolRequest": _ATOL_REQUEST,
                "AtolOperationResponse": _ATOL_OPERATION,
                "AtolTokenResponse": _ATOL_TOKEN,
                "AtolPayload": _ATOL_PAYLOAD,
                "AtolReport": _ATOL_REPORT,
            },
        },
    }


_KOMTET_ERROR = {
    "type": "object",
    "required": ["title", "code", "description"],
    "properties": {
        "title": {"type": "string"},
        "code": {"type": "string", "description": "Kassa's stable code (KOMTET has no table)"},
        "description": {"type": "string", "description": "begins with the field path at fault"},
        "task": _ref("KomtetTask"),
    },
}
_KOMTET_TASK = {
    "type": "object",
    "required": ["id", "external_id", "print_queue_id", "state"],
    "properties": {
        "id": {"type": "string", "description": "the Kassa job id, 32 hex digits"},
        "external_id": {"type": "string"},
        "print_queue_id": {"type": "string", "description": "the register group"},
        "state": {"enum": ["new", "done", "error"]},
    },
}
_KOMTET_INFO = {
    "type": "object",
    "required": [
        "id",
        "external_id",
        "print_queue_id",
        "state",
        "error_description",
        "fiscal_data",
    ],
    "properties": {
        **_KOMTET_TASK["properties"],  # type: ignore[dict-item]
        "error_description": {"type": ["string", "null"]},
        "fiscal_data": {
            "oneOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "required": ["i", "fn", "t", "n", "fp", "s"],
                    "properties": {
                        "i": {"type": "string"},
                        "fn": {"type": "string"},
                        "t": {"type": "string"},
                        "n": {"type": "integer"},
                        "fp": {"type": "string"},
                        "s": {"type": "string"},
                    },
                },
            ]
        },
    },
}
_KOMTET_CHECK = {
    "type": "object",
    "required": ["external_id", "intent", "company", "payments", "positions"],
    "description": "a KOMTET v2 check or correction check (cloud-apis.md §2.2)",
    "properties": {
        "external_id": {"type": "string", "minLength": 1},
        "intent": {
            "enum": [
                "sell",
                "sellReturn",
                "buy",
                "buyReturn",
                "sellCorrection",
                "sellReturnCorrection",
                "buyCorrection",
                "buyReturnCorrection",
            ]
        },
        "company": {"type": "object"},
        "payments": {"type": "array", "items": {"type": "object"}},
        "positions": {"type": "array", "items": {"type": "object"}},
        "callback_url": {"type": "string"},
    },
}
_KOMTET_AUTH = [
    {
        "name": "Authorization",
        "in": "header",
        "required": True,
        "schema": {"type": "string"},
        "description": "the shop id",
    },
    {
        "name": "X-HMAC-Signature",
        "in": "header",
        "required": True,
        "schema": {"type": "string"},
        "description": "hex HMAC-MD5 of method + full URL + body, keyed by the shop's secret",
    },
]
_QUEUE = {"name": "queue_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _komtet_refusals(*codes: int) -> dict[str, Any]:
    texts = {
        401: "no or unknown shop id, or a wrong signature",
        404: "not a queue or task of the shop",
        413: "the body is over the service's limit, unread",
        422: "refused: the description names the field path at fault",
        429: "over the tenant's rate or queue; wait Retry-After seconds",
        500: "a fault of Kassa's own",
        503: "the engine cannot take jobs now; wait Retry-After seconds",
    }
    out: dict[str, Any] = {}
    for code in codes:
        response = _json(_ref("KomtetError"), texts[code])
        if code in (429, 503):
            response["headers"] = _RETRY
        out[str(code)] = response
    return out


def komtet_document() -> dict[str, Any]:
    """The KOMTET Kassa v2-compatible API's part (engine/http/komtet.py)."""
    prefix = "/api/shop/v2"
    return {
        "paths": {
            f"{prefix}/queues/{{queue_id}}/task": {
                "post": {
                    "summary": "KOMTET v2: queue a check for fiscalization",
                    "operationId": "komtetTask",
                    "parameters": [*_KOMTET_AUTH, _QUEUE],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("KomtetCheck")}},
                    },
                    "responses": {
                        "200": _json(_ref("KomtetTask"), "journaled: state new"),
                        **_komtet_refusals(401, 404, 413, 422, 429, 500, 503),
                    },
                },
            },
            f"{prefix}/queues/{{queue_id}}/multi-tasks": {
                "post": {
                    "summary": "KOMTET v2: queue several checks in one commit",
                    "operationId": "komtetMultiTasks",
                    "parameters": [*_KOMTET_AUTH, _QUEUE],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"type": "array", "items": _ref("KomtetCheck")}
                            }
                        },
                    },
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "description": "per entry, keyed by its index: a task or an error",
                                "additionalProperties": {
                                    "oneOf": [_ref("KomtetTask"), _ref("KomtetError")]
                                },
                            },
                            "each entry answered alone",
                        ),
                        **_komtet_refusals(401, 404, 413, 422, 429, 500, 503),
                    },
                },
            },
            f"{prefix}/queues/{{queue_id}}": {
                "get": {
                    "summary": "KOMTET v2: whether the queue can print (a register is ready)",
                    "operationId": "komtetQueue",
                    "parameters": [*_KOMTET_AUTH, _QUEUE],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["id", "state"],
                                "properties": {
                                    "id": {"type": "string"},
                                    "state": {"enum": ["active", "passive"]},
                                },
                            },
                            "the queue's state",
                        ),
                        **_komtet_refusals(401, 404, 429, 500),
                    },
                },
            },
            f"{prefix}/tasks/{{task_id}}": {
                "get": {
                    "summary": "KOMTET v2: a task's state (the callback's body too)",
                    "operationId": "komtetTaskInfo",
                    "parameters": [
                        *_KOMTET_AUTH,
                        {
                            "name": "task_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "200": _json(_ref("KomtetTaskInfo"), "the task"),
                        **_komtet_refusals(401, 404, 429, 500, 503),
                    },
                },
            },
        },
        "components": {
            "schemas": {
                "KomtetCheck": _KOMTET_CHECK,
                "KomtetError": _KOMTET_ERROR,
                "KomtetTask": _KOMTET_TASK,
                "KomtetTaskInfo": _KOMTET_INFO,
            },
        },
    }


def served() -> dict[str, Any]:
    """The document a door with every API of this checkout serves."""
    from engine.http.payments import payments_document
    from engine.http.receipts import receipt_links_document

    return document(
        [atol_document(), komtet_document(), payments_document(), receipt_links_document()]
    )


def text(spec: Mapping[str, Any]) -> str:
    """The document as docs/openapi.json keeps it."""
    return json.dumps(spec, ensure_ascii=False, indent=2) + "\n"


if __name__ == "__main__":
    print(text(served()), end="")

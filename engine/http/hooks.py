"""A tenant's payment notifications (``[tenants.payments]`` in kassa.toml): where they come in,
how their proofs are checked, and the order template of payments without a receipt.

::

    [[tenants]]
    id = "shop"
    [tenants.payments]
    hook = "k8V3q…"                     # the unguessable part of /notifications/{hook}/…, ≥ 16
    group = "main"                      # the register group of the receipts
    settlement = "prepayment"           # or "full": 1214 = 1 then "shipped", or 1214 = 4 at once
    yookassa_secret = "…"               # ?secret= on the URL given to YooKassa (or its networks)
    yookassa_networks = ["185.71.76.0/27", …]   # default: YooKassa's published list
    cloudpayments_secret = "…"          # the site's API secret (Content-HMAC)
    tbank_password = "…"                # the terminal's password (Token)
    [tenants.payments.template]
    name = "Оплата заказа"              # 1030
    vat = "vat22"                       # ATOL's names
    subject = "commodity"               # ATOL v4's names (1212)
    inn = "7707083893"
    tax_system = "osn"                  # ATOL's sno names
    place = "https://shop.example"      # 1187
    email = "shop@example.ru"           # 1117, and the buyer's 1008 when the payment has none

Secrets stay out of reprs and logs.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

import attrs

from protocols.documents.model import Company
from protocols.ingress.atol_v5 import TAX_SYSTEMS, V4_PAYMENT_OBJECTS, VAT_TYPES
from protocols.notifications.receipts import OrderTemplate
from protocols.notifications.yookassa import NETWORKS

PROVIDERS = ("yookassa", "cloudpayments", "tbank")
_KEYS = (
    "hook",
    "group",
    "settlement",
    "yookassa_secret",
    "yookassa_networks",
    "cloudpayments_secret",
    "tbank_password",
    "template",
)
_TEMPLATE_KEYS = ("name", "vat", "subject", "inn", "tax_system", "place", "email")


@attrs.frozen
class PaymentSettings:
    """One tenant's notifications; a provider without its secret is refused."""

    tenant: str
    hook: str = attrs.field(repr=False)
    template: OrderTemplate
    group: str = "main"
    prepayment: bool = True  # settlement = "prepayment"
    yookassa_secret: str | None = attrs.field(default=None, repr=False)
    yookassa_networks: tuple[str, ...] = NETWORKS
    cloudpayments_secret: str | None = attrs.field(default=None, repr=False)
    tbank_password: str | None = attrs.field(default=None, repr=False)


class HookError(ValueError):
    """A fault in ``[tenants.payments]``: ``path`` names the key."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def read_payments(tenant: str, table: Mapping[str, Any]) -> PaymentSettings:
    """The settings of one ``[tenants.payments]`` table; HookError names the key at fault."""
    _known(table, _KEYS, "payments")
    hook = _str(table, "hook", "payments")
    if len(hook) < 16 or not hook.replace("-", "").replace("_", "").isalnum():
        raise HookError("payments.hook", "expected 16 or more letters, digits, '-' or '_'")
    settlement = table.get("settlement", "prepayment")
    if settlement not in ("prepayment", "full"):
        raise HookError(
            "payments.settlement", f'expected "prepayment" or "full", got {settlement!r}'
        )
    networks = table.get("yookassa_networks", list(NETWORKS))
    if not isinstance(networks, list) or not all(isinstance(n, str) for n in networks):
        raise HookError("payments.yookassa_networks", "expected an array of networks")
    for i, network in enumerate(networks):
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError as exc:
            raise HookError(f"payments.yookassa_networks[{i}]", str(exc)) from None
    secrets = {}
    for key in ("yookassa_secret", "cloudpayments_secret", "tbank_password"):
        if key in table:
            secrets[key] = _str(table, key, "payments")
    template = table.get("template")
    if not isinstance(template, dict):
        raise HookError("payments.template", "required, a table")
    return PaymentSettings(
        tenant,
        hook,
        _template(template),
        group=_str(table, "group", "payments") if "group" in table else "main",
        prepayment=settlement == "prepayment",
        yookassa_networks=tuple(networks),
        **secrets,
    )


def _known(table: Mapping[str, Any], keys: tuple[str, ...], path: str) -> None:
    for key in table:
        if key not in keys:
            raise HookError(f"{path}.{key}", "unknown key")


def _str(table: Mapping[str, Any], key: str, path: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise HookError(f"{path}.{key}", "required, a non-empty string")
    return value


def _template(table: Mapping[str, Any]) -> OrderTemplate:
    path = "payments.template"
    _known(table, _TEMPLATE_KEYS, path)
    values = {key: _str(table, key, path) for key in _TEMPLATE_KEYS}
    for key, names in (
        ("vat", VAT_TYPES),
        ("subject", V4_PAYMENT_OBJECTS),
        ("tax_system", TAX_SYSTEMS),
    ):
        if values[key] not in names:
            raise HookError(f"{path}.{key}", f"expected one of {', '.join(names)}")
    company = Company(
        inn=values["inn"],
        tax_system=TAX_SYSTEMS[values["tax_system"]],
        place=values["place"],
        email=values["email"],
    )
    return OrderTemplate(
        values["name"],
        VAT_TYPES[values["vat"]],
        V4_PAYMENT_OBJECTS[values["subject"]],
        company,
        contact=values["email"],
    )

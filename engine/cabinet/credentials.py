"""The cabinet's «Ключи API» page: an owner makes and revokes the tenant's API keys.

Every change goes through the doors' shared keyring (:mod:`engine.keyring`), so it counts at
once for the ATOL and KOMTET APIs and for ZeroMQ's ZAP handler. A made key's secret (an ATOL
password, a KOMTET secret, a CURVE secret key) is on the answer to its POST only: the keyring
keeps a password's hash, a KOMTET secret (its HMAC needs it), a CURVE public key, and no page
shows a secret again.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from engine.cabinet.users import Session
from engine.keyring import Credential, Keyring, KeyringError, Made
from engine.times import zone

if TYPE_CHECKING:
    from engine.cabinet.app import Cabinet

KIND_RU = {"atol": "АТОЛ Онлайн (логин)", "komtet": "КОМТЕТ (shop_id)", "curve": "ZeroMQ CURVE"}
ORIGIN_RU = {"config": "kassa.toml", "cabinet": "кабинет"}
NOTICES = {"revoked": "Ключ отозван: он больше не действует."}


class CredentialsPage:
    """The page's handlers over one cabinet (its rendering, sessions and CSRF)."""

    def __init__(self, cabinet: Cabinet) -> None:
        self.cabinet = cabinet

    @property
    def keyring(self) -> Keyring:
        return self.cabinet.door.keyring

    def routes(self) -> list[BaseRoute]:
        page = self.cabinet.page
        return [
            Route("/credentials", page("credentials", self.show), methods=["GET"]),
            Route("/credentials", page("credentials", self.make, post=True), methods=["POST"]),
            Route(
                "/credentials/revoke",
                page("credentials", self.revoke, post=True),
                methods=["POST"],
            ),
        ]

    def _page(
        self,
        session: Session,
        *,
        made: Made | None = None,
        notice: str = "",
        error: str = "",
        field: str = "",
        code: int = 200,
    ) -> Response:
        tenant = session.user.tenant
        time_zone = self.cabinet.engine.tenants[tenant].timezone
        rows = [_row(c, time_zone) for c in self.keyring.listing(tenant)]
        return self.cabinet.render(
            "credentials.html",
            code,
            **self.cabinet.context(
                session,
                keys=rows,
                made=_made_view(made) if made is not None else None,
                notice=notice,
                error=error,
                field=field,
            ),
        )

    async def show(self, request: Request, session: Session) -> Response:
        notice = NOTICES.get(request.query_params.get("done", ""), "")
        return self._page(session, notice=notice)

    async def make(self, request: Request, session: Session) -> Response:
        """Make a key; its secret is on this answer only (no-store), never in a URL."""
        from engine.cabinet.app import Refusal

        form = request.state.form
        kind = form.get("kind", "")
        tenant = session.user.tenant
        try:
            if kind == "atol":
                made = await self.keyring.make_atol(tenant, form.get("name", ""))
            elif kind == "komtet":
                made = await self.keyring.make_komtet(tenant, form.get("name", ""))
            elif kind == "curve":
                made = await self.keyring.make_curve(tenant)
            else:
                raise Refusal(400, f"kind: ожидалось atol, komtet или curve, получено {kind!r}")
        except KeyringError as exc:
            return self._page(session, error=exc.message, field=exc.field, code=400)
        return self._page(session, made=made)

    async def revoke(self, request: Request, session: Session) -> Response:
        """Revoke one of the tenant's keys; another tenant's is answered as a missing one."""
        from engine.cabinet.app import PREFIX, Refusal

        form = request.state.form
        kind, name = form.get("kind", ""), form.get("name", "")
        if not await self.keyring.revoke(session.user.tenant, kind, name):
            raise Refusal(404, "Ключ не найден.")
        return RedirectResponse(f"{PREFIX}/credentials?done=revoked", 303)


def _row(credential: Credential, time_zone: str) -> dict[str, str]:
    created = "—"
    if credential.created is not None:
        moment = dt.datetime.fromtimestamp(credential.created, zone(time_zone))
        created = moment.strftime("%d.%m.%Y %H:%M")
    return {
        "kind": credential.kind,
        "kind_ru": KIND_RU[credential.kind],
        "name": credential.name,
        "origin": credential.origin,
        "origin_ru": ORIGIN_RU[credential.origin],
        "created": created,
    }


def _made_view(made: Made) -> dict[str, str]:
    credential = made.credential
    view = {"kind": credential.kind, "kind_ru": KIND_RU[credential.kind], "name": credential.name}
    view["secret"] = made.secret
    if credential.kind == "curve":
        view["certificate"] = (
            "#   ZeroMQ CURVE **Secret** Certificate, written by kassa\n\n"
            "metadata\ncurve\n"
            f'    public-key = "{credential.name}"\n'
            f'    secret-key = "{made.secret}"\n'
        )
    return view

"""The cabinet's branding page over real sockets: what the owner saves shows on the buyer's
receipt (HTML, PNG, PDF) at once and after a restart on the same journal; bad input is refused
with the field named; one tenant's branding never reaches another's; only the owner edits."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import httpx
from PIL import Image

from emulator.serve import open_memory_fleet
from engine.render import Branding
from tests.cabinet.conftest import cabinet, csrf_of, login, sell
from tests.http.conftest import Served, moscow_now


def logo(kind: str = "PNG", size: tuple[int, int] = (40, 20)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(out, format=kind)
    return out.getvalue()


async def links(served: Served, client: httpx.AsyncClient, job_id: str) -> list[str]:
    page = await client.get(f"/cabinet/receipts/{job_id}")
    found = re.findall(r'href="(/r/[^"]+)"', page.text)
    assert len(found) == 3, found
    return found


async def save(client: httpx.AsyncClient, **fields: str) -> httpx.Response:
    """The form posted as the page's form does (multipart); ``logo`` as a file if given."""
    page = await client.get("/cabinet/branding")
    assert page.status_code == 200
    values = {"name": "", "primary": "#112233", "accent": "#f0e0d0", "footer": "", **fields}
    upload = values.pop("logo", None)
    files = {"logo": ("logo.png", base64.b64decode(upload), "image/png")} if upload else None
    if files is None:  # an empty file input still makes the form multipart
        files = {"logo": ("", b"", "application/octet-stream")}
    return await client.post(
        "/cabinet/branding", data={"csrf": csrf_of(page), **values}, files=files
    )


async def test_the_owners_branding_shows_on_the_receipt_at_once_and_after_a_restart(
    tmp_path: Path,
) -> None:
    async with open_memory_fleet(2, start=moscow_now()) as fleet:
        async with cabinet(
            tmp_path, fleet=fleet, branding={"shop": Branding(footer="из toml")}
        ) as s:
            job = await sell(s.engine, "shop", "order-1")
            async with login(s, "anna") as client:
                html, png, pdf = await links(s, client, job.id)
                assert "из toml" in (await s.client.get(html)).text
                plain_pdf = (await s.client.get(pdf)).content
                answer = await save(
                    client,
                    name="Кофейня «Зерно»",
                    primary="#1F4E79",
                    accent="#E8F0F8",
                    footer="Скидка 5% по промокоду ЧЕК5 <b>",
                    logo=base64.b64encode(logo()).decode(),
                )
                assert answer.status_code == 303, answer.text
                page = (await client.get(answer.headers["location"])).text
                assert "Оформление сохранено" in page and 'id="preview"' in page
                preview = await client.get("/cabinet/branding/preview.png")
                assert preview.headers["content-type"] == "image/png"
                assert Image.open(io.BytesIO(preview.content)).getpixel((2, 2)) == (232, 240, 248)
                shown = (await s.client.get(html)).text
                assert "Скидка 5% по промокоду ЧЕК5 &lt;b&gt;" in shown and "из toml" not in shown
                assert "Кофейня «Зерно»" in shown and "--primary: #1f4e79" in shown
                assert 'class="logo"' in shown and "data:image/png;base64," in shown
                image = Image.open(io.BytesIO((await s.client.get(png)).content))
                assert image.getpixel((2, 2)) == (232, 240, 248)  # the accent band
                branded_pdf = (await s.client.get(pdf)).content
                assert (
                    branded_pdf.count(b"/Subtype /Image") == plain_pdf.count(b"/Subtype /Image") + 1
                )
        # a new service on the same journal: the cabinet's branding is still the tenant's
        async with (
            cabinet(tmp_path, fleet=fleet, branding={"shop": Branding(footer="из toml")}) as s,
            login(s, "anna") as client,
        ):
            html, png, _ = await links(s, client, job.id)
            shown = (await s.client.get(html)).text
            assert "Скидка 5% по промокоду ЧЕК5" in shown and "data:image/png" in shown
            image = Image.open(io.BytesIO((await s.client.get(png)).content))
            assert image.getpixel((2, 2)) == (232, 240, 248)
            form = await client.get("/cabinet/branding")
            reset = await client.post("/cabinet/branding/reset", data={"csrf": csrf_of(form)})
            assert reset.status_code == 303
            assert "из toml" in (await s.client.get(html)).text


async def test_a_bad_colour_or_logo_is_refused_naming_its_field(tmp_path: Path) -> None:
    async with cabinet(tmp_path) as s, login(s, "anna") as client:
        cases = {
            "primary: основной цвет": {"primary": "red"},
            "accent: цвет фона шапки": {"accent": "#12345g"},
            "footer: текст внизу чека": {"footer": "x" * 1001},
            "logo: файл не является изображением": {
                "logo": base64.b64encode(b"\x89PNG\r\n\x1a\nnot really").decode()
            },
            "logo: ожидалось изображение PNG или JPEG": {
                "logo": base64.b64encode(logo("GIF")).decode()
            },
            "допустимо не больше 256 КБ": {
                "logo": base64.b64encode(b"\x89PNG" + b"0" * (256 * 1024)).decode()
            },
        }
        for message, fields in cases.items():
            answer = await save(client, **fields)
            assert answer.status_code == 422, message
            assert message in answer.text, (message, answer.text[-2000:])
        assert await s.door.brandings.saved(s.engine, "shop") is None  # nothing was saved
        # base64 in an urlencoded post (a script's way), a JPEG logo
        page = await client.get("/cabinet/branding")
        data = "data:image/jpeg;base64," + base64.b64encode(logo("JPEG")).decode()
        answer = await client.post(
            "/cabinet/branding",
            data={
                "csrf": csrf_of(page),
                "primary": "#000000",
                "accent": "#ffffff",
                "logo_base64": data,
            },
        )
        assert answer.status_code == 303, answer.text
        saved = await s.door.brandings.saved(s.engine, "shop")
        assert saved is not None and saved.logo_type == "image/jpeg"


async def test_branding_keeps_to_its_tenant_and_only_the_owner_edits_it(tmp_path: Path) -> None:
    async with cabinet(tmp_path) as s:
        mine = await sell(s.engine, "shop", "order-1")
        theirs = await sell(s.engine, "other", "their-order", group="theirs")
        async with login(s, "anna") as client:
            assert (await save(client, footer="Только для shop")).status_code == 303
            assert (
                "Только для shop" in (await s.client.get((await links(s, client, mine.id))[0])).text
            )
        async with login(s, "oleg") as client:
            html = (await links(s, client, theirs.id))[0]
            assert "Только для shop" not in (await s.client.get(html)).text
            page = (await client.get("/cabinet/branding")).text
            assert "Только для shop" not in page
            assert 'href="/cabinet/branding"' in page  # the owner's nav link
        for user in ("kira", "lena"):  # cashier, accountant
            async with login(s, user) as client:
                dashboard = (await client.get("/cabinet/dashboard")).text
                assert 'href="/cabinet/branding"' not in dashboard
                for path in ("/cabinet/branding", "/cabinet/branding/preview.png"):
                    assert (await client.get(path)).status_code == 403
                token = csrf_of(await client.get("/cabinet/dashboard"))
                answer = await client.post(
                    "/cabinet/branding",
                    data={"csrf": token, "primary": "#000000", "accent": "#ffffff"},
                )
                assert answer.status_code == 403
        async with login(s, "anna") as client:  # no CSRF token: refused
            answer = await client.post(
                "/cabinet/branding", data={"primary": "#000000", "accent": "#ffffff"}
            )
            assert answer.status_code == 403

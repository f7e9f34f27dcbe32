"""The protocol's frames (docs/protocol.md): every request is a Request or a WireError."""

from __future__ import annotations

import datetime as dt
import json
import math
from decimal import Decimal
from typing import Any

import attrs
import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import samples
from engine.journal import FiscalResult, Job, JobState
from engine.limits import DEFAULT_SIZES, MAX_REQUEST_BYTES, MIN_BYTES, SizeLimits
from engine.reports import ReceiptLine
from engine.wire import (
    BYTES_PER_VALUE,
    MAX_DEPTH,
    OPERATIONS,
    VALUES_FLOOR,
    CancelArgs,
    ExportArgs,
    JobRef,
    ListJobsArgs,
    NoArgs,
    ReportArgs,
    Request,
    ShiftArgs,
    SubmitArgs,
    SubmitBatchArgs,
    WireError,
    decode_answer,
    decode_request,
    encode_answer,
    encode_chunk,
    encode_error,
    encode_event,
    encode_wire_error,
    error_dict,
    fiscal_view,
    job_view,
    line_view,
    read_receipt,
    receipt_problems,
    value_limit,
)
from protocols.documents.json_format import receipt_to_json
from protocols.ingress import dump_json, to_atol_v5, to_komtet_task
from protocols.ingress.atol_v5 import AtolRequest
from protocols.ingress.komtet import KomtetTask
from protocols.validation import Problem, validate


def frame(**fields: Any) -> bytes:
    packed: bytes = msgpack.packb({"v": 1, "id": 7, **fields}, use_bin_type=True)
    return packed


def kassa_body() -> dict[str, Any]:
    return receipt_to_json(samples.card_sale())


def refused(data: bytes) -> WireError:
    with pytest.raises(WireError) as caught:
        decode_request(data)
    return caught.value


def receipt_refused(value: Any) -> WireError:
    with pytest.raises(WireError) as caught:
        read_receipt(value, "receipt")
    return caught.value


# --- the envelope ---------------------------------------------------------------------------


def test_a_ping_is_read_with_its_id() -> None:
    assert decode_request(frame(op="ping")) == Request(7, "ping", NoArgs())
    assert decode_request(frame(op="ping", id="req-1")).id == "req-1"
    assert decode_request(frame(op="ping", id=2**63 - 1)).id == 2**63 - 1


@pytest.mark.parametrize(
    "data",
    [b"", b"\xc1", b"\x92\x01", msgpack.packb([1, 2]), msgpack.packb("ping"), b"\x81\xa1"],
)
def test_what_is_not_a_msgpack_map_is_a_bad_request_without_id(data: bytes) -> None:
    error = refused(data)
    assert (error.code, error.request_id) == ("bad_request", None)


@pytest.mark.parametrize("bad_id", [None, True, -1, 2**63, 1.5, "x" * 65, b"bin", [1]])
def test_an_unusable_id_is_a_bad_request_at_path_id(bad_id: Any) -> None:
    error = refused(frame(op="ping", id=bad_id))
    assert (error.code, error.path, error.request_id) == ("bad_request", "id", None)


def test_version_and_operation_are_checked_with_the_id_echoed() -> None:
    for version in (2, 0, True, "1", 1.0):
        error = refused(frame(op="ping", v=version))
        assert (error.code, error.path, error.request_id) == ("unsupported_version", "v", 7)
    assert refused(msgpack.packb({"id": 7, "op": "ping"})).path == "v"
    error = refused(frame(op="fly"))
    assert (error.code, error.path, error.request_id) == ("unknown_op", "op", 7)
    assert refused(frame(op=3)).code == "bad_request"


def test_an_argument_the_operation_does_not_have_is_refused() -> None:
    error = refused(frame(op="ping", extra=1))
    assert (error.code, error.path) == ("bad_request", "extra")


def test_nesting_beyond_32_levels_is_too_deep_before_anything_else() -> None:
    value: Any = 1
    for _ in range(MAX_DEPTH):
        value = [value]
    error = refused(frame(op="ping", junk=value))  # 33 levels with the request map
    assert (error.code, error.request_id) == ("too_deep", 7)
    shallower: Any = 1
    for _ in range(MAX_DEPTH - 1):
        shallower = {"a": shallower}
    assert refused(frame(op="ping", junk=shallower)).code == "bad_request"  # 32: read, then refused


def test_very_deep_nesting_never_recurses() -> None:
    data = b"\x91" * 100_000 + b"\x01"  # msgpack stops it with its own stack limit
    assert refused(data).code == "too_deep"
    data = b"\x81\xa2id\x07" + b""  # a map missing its value
    assert refused(data).code == "bad_request"


def test_strings_arrays_and_maps_over_their_limits_are_too_deep() -> None:
    assert refused(frame(op="ping", junk="x" * (1 << 20 + 1))).code == "too_deep"
    assert refused(frame(op="ping", junk=b"x" * ((1 << 20) + 1))).code == "too_deep"
    assert refused(frame(op="ping", junk=[0] * 10_001)).code == "too_deep"
    assert refused(frame(op="ping", junk={str(i): 0 for i in range(10_001)})).code == "too_deep"


def padded(element: bytes, size: int) -> bytes:
    """A ping of about ``size`` bytes whose ``pad`` is arrays of 10,000 ``element`` each."""
    count = size // (10_000 * len(element))
    array = b"\xdc" + (10_000).to_bytes(2, "big") + element * 10_000
    head = b"\x84" + msgpack.packb("id") + msgpack.packb(7) + msgpack.packb("v") + b"\x01"
    head += msgpack.packb("op") + msgpack.packb("ping") + msgpack.packb("pad")
    return head + b"\xdc" + count.to_bytes(2, "big") + array * count


@pytest.mark.parametrize("element", [b"\x90", b"\x80", b"\xc0", b"\x91\xc0"])
def test_a_frame_of_a_million_tiny_values_is_refused_by_their_count(element: bytes) -> None:
    """A megabyte of empty arrays took the decoder 0.6 s: it stops at one value per 4 bytes."""
    data = padded(element, 1 << 20)
    error = refused(data)
    assert (error.code, error.path, error.request_id) == ("too_deep", "pad", 7)
    limit = value_limit(len(data))
    assert limit == VALUES_FLOOR + len(data) // BYTES_PER_VALUE
    assert error.message == (
        f"more than {limit} values in a request of {len(data)} bytes "
        f"(at most {VALUES_FLOOR} and one per {BYTES_PER_VALUE} bytes)"
    )
    body = {"format": "kassa", "body": {"pad": [[]] * 5_000}}
    batch = frame(op="submit_batch", jobs=[{"external_id": "a", "receipt": body}] * 5)
    error = refused(batch)
    assert (error.code, error.path, error.request_id) == ("too_deep", "jobs", 7)
    measured = SizeLimits(receipt_bytes=16 << 10)  # the batch is larger: receipts one by one
    error = refused_at(batch, measured)
    assert (error.code, error.path, error.request_id) == ("too_deep", "jobs[1]", 7)


def test_real_requests_hold_far_fewer_values_than_their_limit() -> None:
    entry = {"external_id": "a", "receipt": {"format": "kassa", "body": kassa_body()}}
    batch = decode_request(frame(op="submit_batch", jobs=[entry] * 1_000)).args
    assert isinstance(batch, SubmitBatchArgs) and len(batch.jobs) == 1_000
    assert all(isinstance(job, SubmitArgs) for job in batch.jobs)
    assert decode_request(frame(op="ping")).op == "ping"
    scalars = [0] * 1_000  # dense, but within the floor
    assert refused(frame(op="ping", junk=scalars)).code == "bad_request"


def test_map_keys_must_be_strings() -> None:
    assert refused(msgpack.packb({1: 1, "id": 7})).code == "bad_request"


# --- the arguments --------------------------------------------------------------------------


def test_every_operation_reads_its_arguments() -> None:
    receipt = {"format": "kassa", "body": kassa_body()}
    cases: dict[str, tuple[dict[str, Any], Any]] = {
        "ping": ({}, NoArgs()),
        "registers": ({}, NoArgs()),
        "events": ({}, NoArgs()),
        "status": ({"job_id": "abc"}, JobRef(job_id="abc")),
        "receipt": ({"external_id": "o-1"}, JobRef(external_id="o-1")),
        "list_jobs": ({"limit": 5, "after": "x"}, ListJobsArgs("x", 5)),
        "report": ({"start": 1, "end": 2.5, "register": "kkt-1"}, ReportArgs(1.0, 2.5, "kkt-1")),
        "export": ({"form": "jsonl"}, ExportArgs("jsonl", 0.0, math.inf)),
        "cancel": ({"job_id": "abc"}, CancelArgs("abc")),
        "shift": ({"register": "kkt-1", "action": "close"}, ShiftArgs("kkt-1", "close")),
    }
    assert set(cases) | {"submit", "submit_batch"} == set(OPERATIONS)
    for op, (args, expected) in cases.items():
        assert decode_request(frame(op=op, **args)).args == expected, op
    submit = decode_request(frame(op="submit", external_id="o-1", receipt=receipt)).args
    assert isinstance(submit, SubmitArgs)
    assert (submit.external_id, submit.group) == ("o-1", "main")
    assert submit.receipt.receipt == samples.card_sale()
    batch = decode_request(
        frame(op="submit_batch", jobs=[{"external_id": "a", "receipt": receipt, "group": "g"}])
    ).args
    assert isinstance(batch, SubmitBatchArgs) and isinstance(batch.jobs[0], SubmitArgs)
    assert batch.jobs[0].group == "g"
    assert decode_request(frame(op="list_jobs")).args == ListJobsArgs("", 100)


@pytest.mark.parametrize(
    ("op", "args", "path"),
    [
        ("status", {}, "job_id"),
        ("status", {"job_id": "a", "external_id": "b"}, "job_id"),
        ("status", {"job_id": 5}, "job_id"),
        ("list_jobs", {"limit": True}, "limit"),
        ("list_jobs", {"limit": 0}, "limit"),
        ("list_jobs", {"limit": 1001}, "limit"),
        ("list_jobs", {"limit": 10.0}, "limit"),
        ("report", {"start": 0}, "end"),
        ("report", {"start": "0", "end": 1}, "start"),
        ("report", {"start": 5, "end": 1}, "end"),
        ("report", {"start": 0, "end": math.nan}, "end"),
        ("report", {"start": False, "end": 1}, "start"),
        ("export", {"form": "xml"}, "form"),
        ("export", {}, "form"),
        ("cancel", {"job_id": ""}, "job_id"),
        ("shift", {"register": "kkt-1", "action": "reboot"}, "action"),
        ("submit", {"external_id": "", "receipt": {}}, "external_id"),
        ("submit", {"external_id": "x" * 129, "receipt": {}}, "external_id"),
        ("submit", {"external_id": 17, "receipt": {}}, "external_id"),
        ("submit", {"external_id": "a"}, "receipt"),
        ("submit", {"external_id": "a", "receipt": []}, "receipt"),
        (
            "submit",
            {"external_id": "a", "receipt": {"format": "xml", "body": {}}},
            "receipt.format",
        ),
        ("submit", {"external_id": "a", "receipt": {"format": "kassa"}}, "receipt.body"),
        (
            "submit",
            {"external_id": "a", "receipt": {"format": "kassa", "body": "{}"}},
            "receipt.body",
        ),
        ("submit_batch", {"jobs": []}, "jobs"),
        ("submit_batch", {"jobs": {}}, "jobs"),
    ],
)
def test_a_missing_or_mistyped_argument_names_its_path(
    op: str, args: dict[str, Any], path: str
) -> None:
    error = refused(frame(op=op, **args))
    assert (error.code, error.path, error.request_id) == ("bad_request", path, 7), error


def test_a_batch_answers_a_bad_entry_in_place() -> None:
    good = {"external_id": "a", "receipt": {"format": "kassa", "body": kassa_body()}}
    bad = {"external_id": "b", "receipt": {"format": "kassa", "body": {"kind": "x"}}}
    args = decode_request(frame(op="submit_batch", jobs=[good, bad, 3])).args
    assert isinstance(args, SubmitBatchArgs)
    first, second, third = args.jobs
    assert isinstance(first, SubmitArgs)
    assert isinstance(second, WireError) and second.path == "jobs[1].receipt.body.kind"
    assert isinstance(third, WireError) and third.path == "jobs[2]"
    too_many = [good] * 1001
    assert refused(frame(op="submit_batch", jobs=too_many)).path == "jobs"


# --- sizes --------------------------------------------------------------------------------------

SMALL = SizeLimits(request_bytes=2 * MIN_BYTES, receipt_bytes=MIN_BYTES)


def refused_at(data: bytes, limits: SizeLimits) -> WireError:
    with pytest.raises(WireError) as caught:
        decode_request(data, limits)
    return caught.value


def test_a_frame_over_the_request_limit_is_too_large_with_nothing_decoded_but_its_id() -> None:
    head = frame(op="submit", external_id="a", receipt={"format": "komtet", "body": "x" * 10})
    garbage = head + b"\xc1" * 3000  # decoding it would say bad_request
    error = refused_at(garbage, SMALL)
    assert (error.code, error.request_id) == ("too_large", 7)
    assert error.as_dict() == {
        "code": "too_large",
        "message": f"a request of {len(garbage)} bytes is over this service's limit "
        "of 2048 bytes (2 KiB)",
        "path": "",
        "limit": 2048,
        "size": len(garbage),
    }
    late = msgpack.packb({"v": 1, "op": "ping", "junk": "x" * 3000, "id": 8})
    assert refused_at(late, SMALL).request_id is None  # not among the first arguments
    assert refused_at(b"\xc1" * 3000, SMALL).request_id is None


def test_a_receipt_over_the_receipt_limit_is_too_large_at_its_path() -> None:
    limits = SizeLimits(request_bytes=MAX_REQUEST_BYTES, receipt_bytes=MIN_BYTES)
    big = {"format": "komtet", "body": "x" * 2000}
    size = len(msgpack.packb(big))
    error = refused_at(frame(op="submit", external_id="a", receipt=big), limits)
    assert (error.code, error.path, error.request_id) == ("too_large", "receipt", 7)
    assert (error.limit, error.size) == (MIN_BYTES, size)
    assert error.message == (
        f"a receipt of {size} bytes is over this service's limit of 1024 bytes (1 KiB)"
    )
    good = {"external_id": "a", "receipt": {"format": "kassa", "body": kassa_body()}}
    entry = {"external_id": "b", "receipt": big}
    request = decode_request(frame(op="submit_batch", jobs=[good, entry, good]), limits)
    assert isinstance(request.args, SubmitBatchArgs)
    first, second, third = request.args.jobs
    assert isinstance(first, SubmitArgs) and isinstance(third, SubmitArgs)
    assert isinstance(second, WireError)
    assert (second.code, second.path, second.limit) == ("too_large", "jobs[1]", MIN_BYTES)
    assert second.size == len(msgpack.packb(entry))
    assert first == decode_request(frame(op="submit", **good)).args  # measured, then read alike


# --- money and receipts ---------------------------------------------------------------------


@pytest.mark.parametrize("price", ["1.9", 1.9, True, None, "129900"])
def test_money_is_an_integer_of_kopecks_and_nothing_else(price: Any) -> None:
    body = kassa_body()
    body["items"][0]["price"] = price
    error = refused(frame(op="submit", external_id="a", receipt={"format": "kassa", "body": body}))
    assert (error.code, error.path) == ("bad_request", "receipt.body.items[0].price")
    assert error.problems[0]["path"] == "receipt.body.items[0].price"


def test_a_quantity_is_a_decimal_string_never_a_float() -> None:
    body = kassa_body()
    body["items"][0]["quantity"] = 1.5
    error = refused(frame(op="submit", external_id="a", receipt={"format": "kassa", "body": body}))
    assert error.path == "receipt.body.items[0].quantity"
    body["items"][0]["quantity"] = "1.500"
    body["items"][0]["sum"] = 194850
    args = decode_request(
        frame(op="submit", external_id="a", receipt={"format": "kassa", "body": body})
    ).args
    assert isinstance(args, SubmitArgs)
    assert args.receipt.receipt.items[0].quantity == Decimal("1.5")


def atol_body() -> dict[str, Any]:
    request = AtolRequest("o-1", dt.datetime(2026, 3, 2, 8, 0), samples.card_sale())
    operation, body = to_atol_v5(request)
    assert operation == "sell"
    return body


def test_an_atol_body_maps_onto_the_model_from_a_map_or_json_text() -> None:
    text = dump_json(atol_body())  # Decimals written exactly
    as_text = read_receipt({"format": "atol_v5", "body": text}, "receipt")
    assert as_text.receipt.total == samples.card_sale().total
    assert as_text.operation == "sell"
    whole = json.loads(text)  # 1299.0 roubles are floats here: a map must carry no fraction
    assert any(isinstance(i["price"], float) for i in whole["receipt"]["items"])
    error = receipt_refused({"format": "atol_v5", "body": whole})
    assert error.code == "bad_request"
    assert error.path == "receipt.body.receipt.items[0].price"


def test_a_komtet_body_maps_onto_the_model() -> None:
    sale = samples.card_sale()
    sale = attrs.evolve(sale, company=attrs.evolve(sale.company, email=None))  # KOMTET has none
    body = to_komtet_task(KomtetTask("o-1", sale))
    read = read_receipt({"format": "komtet", "body": dump_json(body)}, "receipt")
    assert read.receipt == sale
    error = receipt_refused({"format": "komtet", "body": {"intent": "sell"}})
    assert error.path.startswith("receipt.body")
    assert error.problems


def test_an_operation_is_only_for_atol() -> None:
    error = receipt_refused({"format": "kassa", "body": kassa_body(), "operation": "sell"})
    assert error.path == "receipt.operation"
    error = receipt_refused({"format": "atol_v5", "body": atol_body(), "operation": "fly"})
    assert error.path == "receipt.operation"


def test_validation_problems_get_the_paths_of_the_body_sent() -> None:
    kassa = read_receipt({"format": "kassa", "body": kassa_body()}, "receipt")
    problem = Problem("items[0].price", "item.sum_mismatch", "sum is not price × quantity")
    assert receipt_problems(kassa, [problem])[0]["path"] == "receipt.body.items[0].price"
    body = atol_body()
    body["receipt"]["items"][0]["vat"]["sum"] = Decimal("1.00")  # a wrong VAT sum
    atol = read_receipt({"format": "atol_v5", "body": dump_json(body)}, "receipt")
    found = validate(atol.receipt)
    assert found
    paths = [p["path"] for p in receipt_problems(atol, found, "jobs[2].receipt")]
    assert all(p.startswith("jobs[2].receipt.body.receipt.") for p in paths), paths
    assert "jobs[2].receipt.body.receipt.items[0].vat.sum" in paths


# --- answers --------------------------------------------------------------------------------


JOB = Job("j1", "shop", "o-1", b"{}", JobState.FISCALIZED, "kkt-1", None, 1.5, 2.5)
RESULT = FiscalResult("j1", "kkt-1", "9999", 12, b"\x01" * 6, 123, "t=...", b"\x02\x03", 2.5)


def test_views_follow_the_protocol() -> None:
    assert job_view(JOB, "Europe/Moscow") == {
        "id": "j1",
        "external_id": "o-1",
        "state": "fiscalized",
        "error": None,
        "register": "kkt-1",
        "created": 1.5,
        "updated": 2.5,
        "time_zone": "Europe/Moscow",
    }
    assert fiscal_view(RESULT) == {
        "fd_number": 12,
        "fn_number": "9999",
        "fiscal_sign": b"\x01" * 6,
        "printed_sign": 123,
        "qr": "t=...",
        "fiscalized_at": 2.5,
        "document": b"\x02\x03",
    }
    line = ReceiptLine(1, "Чай", Decimal("10.000"), 0, None, 100, 1000, 1, 167, 4, 1, None)
    assert line_view(line)["quantity"] == "10"
    assert set(line_view(line)) == {
        "n",
        "name",
        "quantity",
        "price",
        "sum",
        "vat",
        "payment_method",
        "payment_subject",
        "marking",
    }


def test_answers_errors_chunks_and_events_are_msgpack_maps() -> None:
    assert decode_answer(encode_answer(3, {"pong": True})) == {
        "v": 1,
        "id": 3,
        "ok": True,
        "result": {"pong": True},
    }
    busy = decode_answer(encode_error("r", error_dict("busy", "full", retry_after=2)))
    assert busy["error"] == {"code": "busy", "message": "full", "path": "", "retry_after": 2.0}
    problems = [{"code": "c", "message": "m", "path": "p"}]
    error = WireError("validation", "m", "p", request_id=None, problems=problems)
    assert decode_answer(encode_wire_error(error)) == {
        "v": 1,
        "id": None,
        "ok": False,
        "error": {"code": "validation", "message": "m", "path": "p", "problems": problems},
    }
    assert decode_answer(encode_chunk(4, 2, "a,b\r\n", False))["result"] == {
        "seq": 2,
        "chunk": "a,b\r\n",
        "more": False,
    }
    topic, body = encode_event(JOB, RESULT, "Asia/Omsk")
    assert topic == b"job"
    event = msgpack.unpackb(body)
    assert event["event"] == "job" and event["job"]["id"] == "j1"
    assert event["job"]["time_zone"] == "Asia/Omsk"
    assert event["fiscal"]["fiscal_sign"] == b"\x01" * 6


# --- fuzz ---------------------------------------------------------------------------------------


def decodes_or_refuses(data: bytes, limits: SizeLimits = DEFAULT_SIZES) -> None:
    try:
        request = decode_request(data, limits)
    except WireError as error:
        codes = {"bad_request", "too_deep", "too_large", "unsupported_version", "unknown_op"}
        assert error.code in codes
        assert isinstance(error.as_dict()["message"], str)
        encode_wire_error(error)  # always answerable
    else:
        assert isinstance(request, Request)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512))
def test_arbitrary_bytes_give_a_request_or_a_wire_error(data: bytes) -> None:
    decodes_or_refuses(data)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.binary(max_size=20),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=40,
)
KEYS = ["v", "id", "op", "external_id", "receipt", "jobs", "job_id", "limit", "start", "end",
        "form", "register", "action", "after", "group", "format", "body", "operation"]  # fmt: skip
requests = st.fixed_dictionaries(
    {"v": st.one_of(st.just(1), values), "id": st.one_of(st.integers(0, 9), values)},
    optional={
        "op": st.one_of(st.sampled_from(OPERATIONS), values),
        **{key: values for key in KEYS[3:]},
    },
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_arbitrary_msgpack_values_give_a_request_or_a_wire_error(value: Any) -> None:
    decodes_or_refuses(msgpack.packb(value, use_bin_type=True))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests)
def test_request_shaped_maps_give_a_request_or_a_wire_error(value: dict[str, Any]) -> None:
    decodes_or_refuses(msgpack.packb(value, use_bin_type=True))


receipt_bodies = st.fixed_dictionaries(
    {"format": st.sampled_from(["kassa", "atol_v5", "komtet"])},
    optional={"body": st.one_of(values, st.just(kassa_body())), "operation": values},
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(receipt_bodies, st.data())
def test_mangled_receipts_give_a_request_or_a_wire_error(
    receipt: dict[str, Any], data: st.DataObject
) -> None:
    body = receipt.get("body")
    if isinstance(body, dict) and body.get("kind") == "receipt":  # mangle one field of a good one
        key = data.draw(st.sampled_from(sorted(body)))
        body = {**body, key: data.draw(values)}
        receipt = {**receipt, "body": body}
    decodes_or_refuses(frame(op="submit", external_id="a", receipt=receipt))


def outcome(data: bytes, limits: SizeLimits) -> Any:
    """The request, or the error's code, path and message."""
    try:
        return decode_request(data, limits)
    except WireError as error:
        return (error.code, error.path, error.message)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests, st.integers(0, 1500))
def test_measuring_receipts_changes_no_answer_but_too_large(
    value: dict[str, Any], pad: int
) -> None:
    """A frame over one receipt is read a second way (receipts measured, then decoded)."""
    data = msgpack.packb({**value, "pad": "x" * pad}, use_bin_type=True)
    measured = outcome(data, SizeLimits(request_bytes=MAX_REQUEST_BYTES, receipt_bytes=MIN_BYTES))
    if isinstance(measured, tuple) and measured[0] == "too_large":
        return
    if isinstance(measured, Request) and isinstance(measured.args, SubmitBatchArgs):
        jobs = measured.args.jobs
        if any(isinstance(j, WireError) and j.code == "too_large" for j in jobs):
            return
    assert measured == outcome(data, DEFAULT_SIZES)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(requests, values), st.binary(min_size=0, max_size=2500))
def test_large_frames_give_a_request_or_a_wire_error(value: Any, tail: bytes) -> None:
    data = msgpack.packb(value, use_bin_type=True) + tail  # a tail is extra data, or cut short
    decodes_or_refuses(data, SMALL)


def test_request_classes_are_frozen() -> None:
    request = decode_request(frame(op="ping"))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        request.op = "submit"  # type: ignore[misc]


def test_json_text_bodies_have_the_same_depth_limit() -> None:
    deep = "[" * 40 + "]" * 40
    body = '{"receipt": ' + deep + "}"
    assert receipt_refused({"format": "komtet", "body": body}).code == "too_deep"
    assert receipt_refused({"format": "atol_v5", "body": "{"}).path == "receipt.body"

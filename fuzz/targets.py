"""The fuzz targets: every decoder, state machine and front door Kassa reads untrusted bytes at.

A target is a function of one byte string. It holds when the input parses, or is refused with
the module's own error type (a :class:`~protocols.errors.ProtocolError` subclass, or the
engine's ``WireError``); where an encoder exists, what was decoded must encode and decode back
to the same value. Any other exception is a finding. Hangs are caught by the runner's per-input
time limit. Differential targets also ask a second implementation and want the same facts.

Every target is deterministic in its input, so a finding replays byte for byte.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import json
import os
from collections.abc import Callable, Iterator
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import attrs
import msgpack  # type: ignore[import-untyped]

from fuzz.script import Reader, script, steps

SEEDS = Path(__file__).parent / "seeds"


class Broken(AssertionError):
    """A property that failed: the input decoded, but not to what it must."""


@attrs.frozen
class Target:
    """One fuzz target: its name, what it checks, the check and its seed inputs."""

    name: str
    doc: str
    check: Callable[[bytes], None]
    seeds: Callable[[], list[bytes]]
    #: A few hundred inputs a second, not thousands: the smoke gives it a tenth of the runs.
    slow: bool = False


@cache
def _vectors() -> dict[str, list[dict[str, Any]]]:
    loaded: dict[str, list[dict[str, Any]]] = json.loads((SEEDS / "vectors.json").read_text())
    return loaded


def _hex(protocol: str, kind: str | None = None) -> list[bytes]:
    return [
        bytes.fromhex(v["hex"]) for v in _vectors()[protocol] if kind is None or v["kind"] == kind
    ]


def _same(what: str, first: object, second: object) -> None:
    if first != second:
        raise Broken(f"{what}: {first!r} != {second!r}")


# --- TLV and FFD documents --------------------------------------------------------------------


def _tlv_seeds() -> list[bytes]:
    return _hex("ffd", "tlv-fragment") + _hex("ffd", "tlv-document") + [_sample_document()]


@cache
def _sample_document() -> bytes:
    from protocols.tlv import encode_document

    return encode_document(
        3,
        {
            1012: dt.datetime(2025, 12, 1, 12, 30),
            1040: 7,
            1041: "9999078900001234",
            1037: "0000000001012345",
            1054: 1,
            1020: 45000,
            1059: [{1030: "Холодильник", 1079: 4500000, 1023: Decimal("1.000"), 1043: 4500000}],
        },
    )


def check_tlv(data: bytes) -> None:
    """protocols.tlv.decode: TlvError or a value; a clean decode re-encodes to the same tags."""
    from protocols.tlv import TlvError, decode, encode

    try:
        decoded = decode(data)
    except TlvError:
        return
    if decoded.warnings:
        return  # accepted leniently: unknown or repeated tags need not survive a re-encoding
    try:
        again = encode(decoded.fields)
    except TlvError as exc:
        raise Broken(f"decoded tags do not encode: {exc}") from exc
    # Fields of a padded width (1203 INN, 1041 ФН number …) are padded on the way out, so a
    # short one comes back longer: equal once padding is set aside, and a fixed point after.
    back = decode(again).fields
    _same("decode(encode(x))", _unpadded(back), _unpadded(decoded.fields))
    _same("encode(decode(encode(x)))", encode(back), again)


def _unpadded(value: Any) -> Any:
    if isinstance(value, dict):
        return {tag: _unpadded(item) for tag, item in value.items()}
    if isinstance(value, list):
        return [_unpadded(item) for item in value]
    return value.rstrip(" ") if isinstance(value, str) else value


def check_ffd(data: bytes) -> None:
    """A whole fiscal document (decode_document) and a receipt read from it (decode_receipt)."""
    from protocols.documents.ffd import decode_receipt
    from protocols.errors import ProtocolError
    from protocols.tlv import TlvError, decode_document

    try:
        document = decode_document(data)
    except TlvError:
        return
    _same("wire kept", document.wire, data)
    if document.code in (3, 31):
        with contextlib.suppress(ProtocolError):
            decode_receipt(data)


def check_tlv_reference(data: bytes) -> None:
    """Differential: what Kassa's codec decodes cleanly, benchmarks' reference decodes the same."""
    from benchmarks.reference_tlv import reference_decode
    from protocols.tlv import TlvError, decode

    try:
        decoded = decode(data)
    except TlvError:
        return
    if decoded.warnings:
        return
    try:
        reference = reference_decode(data)
    except Exception:  # the reference checks nothing: a 4-byte 1213, for one, breaks it
        return
    _same("kassa vs reference", decoded.fields, reference)


# --- Shtrih-M ----------------------------------------------------------------------------------


def _link_seeds(frames: list[bytes], send: bytes) -> list[bytes]:
    seeds = [script((0, frame)) for frame in frames]
    seeds.append(script((2, send), *((0, frame) for frame in frames[:3]), (1, b"")))
    return seeds


def _drive(
    link: Any,
    data: bytes,
    event: Callable[[bytes], object],
    frame: Callable[[bytes], bytes],
    error: type[Exception],
) -> None:
    """Feed a sans-IO link a script: 0 bytes in, 1 its timer expires, 2 an event out, 3 a
    well-formed frame in (its checksum right, which mutation alone would seldom make)."""
    from protocols.shtrih import NEED_DATA

    for op, chunk in steps(data):
        try:
            kind = op % 4
            if kind == 0:
                link.receive_data(chunk)
            elif kind == 1:
                link.timeout()
            elif kind == 2:
                link.send(event(chunk))
            else:
                link.receive_data(frame(chunk))
            link.data_to_send()
            while link.next_event() is not NEED_DATA:
                pass
        except error:
            return


def _shtrih_link(make: Callable[[], Any], host: bool, v2: bool) -> Callable[[bytes], None]:
    from protocols.shtrih import AnswerFrame, CommandFrame, ShtrihError
    from protocols.shtrih.link_v1 import encode_frame
    from protocols.shtrih.link_v2 import encode_packet

    def frame(chunk: bytes) -> bytes:
        if v2:
            return encode_packet(int.from_bytes(chunk[:2], "little"), chunk[2:])
        return encode_frame(chunk[:255])

    def check(data: bytes) -> None:
        def event(chunk: bytes) -> object:
            return CommandFrame(payload=chunk) if host else AnswerFrame(payload=chunk)

        try:
            link = make()
        except ShtrihError:
            return
        _drive(link, data, event, frame, ShtrihError)

    return check


def _shtrih_v1_frames() -> list[bytes]:
    return _hex("shtrih-v1")


def _shtrih_v2_frames() -> list[bytes]:
    return _hex("shtrih-v2")


def _payloads(frames: list[bytes]) -> list[bytes]:
    """Command/answer payloads inside captured v1 frames (STX LEN payload LRC)."""
    return [f[2:-1] for f in frames if len(f) > 3 and f[0] == 2 and f[1] == len(f) - 3]


def check_shtrih_commands(data: bytes) -> None:
    """Requests and answers of every known command: ShtrihError or values that re-encode."""
    from protocols.shtrih import ShtrihError, decode_answer, decode_request

    for decode in (decode_request, decode_answer):
        try:
            value = decode(data)
        except ShtrihError:
            continue
        try:
            again = value.encode()
        except ShtrihError as exc:
            raise Broken(f"{type(value).__name__} decoded but does not encode: {exc}") from exc
        _same("decode(encode(x))", decode(again), value)


# --- ATOL ----------------------------------------------------------------------------------------


def check_atol_transport(data: bytes) -> None:
    """v3 packets (decode_packet, and the FrameReader on a stream) and v2 frames."""
    from protocols.atol import AtolError, decode_packet, encode_packet
    from protocols.atol.transport import FrameReader, Packet, decode_v2_frame, encode_v2_frame

    # The reader reports any ID byte, so that a connection can ignore the reserved ones
    # (0xE0…0xEF, 0xF1…0xFF) without calling the frame broken; only IDs a sender may use
    # (0x00…0xDF, 0xF0) encode, so only those must come back the same.
    try:
        packet = decode_packet(data)
    except AtolError:
        pass
    else:
        if _atol_id(packet.packet_id):
            again = decode_packet(encode_packet(packet.packet_id, packet.data))
            _same("packet round trip", again, packet)
    try:
        body = decode_v2_frame(data)
    except AtolError:
        pass
    else:
        _same("v2 round trip", decode_v2_frame(encode_v2_frame(body)), body)
    reader = FrameReader()
    try:
        for item in reader.feed(data):
            if isinstance(item, Packet) and _atol_id(item.packet_id):
                _same(
                    "stream vs frame", decode_packet(encode_packet(item.packet_id, item.data)), item
                )
    except AtolError:
        pass


def _atol_id(packet_id: int) -> bool:
    from protocols.atol.transport import ASYNC_PACKET_ID, MAX_PACKET_ID

    return packet_id <= MAX_PACKET_ID or packet_id == ASYNC_PACKET_ID


def check_atol_taskbuffer(data: bytes) -> None:
    """Task-buffer messages both ways and the register's TaskBuffer fed them in order."""
    from protocols.atol import AtolError
    from protocols.atol.taskbuffer import TaskBuffer, decode_device_message, decode_host_message

    buffer = TaskBuffer()
    for _, chunk in steps(data):
        try:
            device = decode_device_message(chunk)
        except AtolError:
            pass
        else:
            _same("device message round trip", decode_device_message(device.encode()), device)
        try:
            message = decode_host_message(chunk)
        except AtolError:
            continue
        _same("host message round trip", decode_host_message(message.encode()), message)
        try:
            buffer.handle(message)
        except AtolError:
            return


def check_atol_commands(data: bytes) -> None:
    """Application requests (the register's side) and the answers to each (the host's side)."""
    from protocols.atol import REQUESTS, AtolError, decode_answer, decode_request

    reader = Reader(data)
    request_type = reader.pick(list(REQUESTS.values()))
    payload = reader.rest()
    try:
        request = decode_request(payload)
    except AtolError:
        pass
    else:
        try:
            again = request.encode()
        except AtolError as exc:
            raise Broken(f"{type(request).__name__} decoded but does not encode: {exc}") from exc
        _same("decode(encode(x))", decode_request(again), request)
    with contextlib.suppress(AtolError):
        decode_answer(request_type, payload)


def check_atol_host(data: bytes) -> None:
    """The host's connection (Kassa's driver) fed a script of device bytes and host sends."""
    _atol_connection(data, host=True)


def check_atol_device(data: bytes) -> None:
    """The register's connection (the emulator's) fed a script of host bytes and its actions."""
    _atol_connection(data, host=False)


def _atol_connection(data: bytes, host: bool) -> None:
    from protocols.atol import NEED_DATA, AtolError, DeviceConnection, HostConnection
    from protocols.atol.taskbuffer import decode_host_message
    from protocols.atol.transport import encode_packet

    link: Any = HostConnection() if host else DeviceConnection()
    for op, chunk in steps(data):  # 0 bytes in, 1 a send, 2 a well-formed packet in (good CRC)
        try:
            if op % 3 == 0:
                link.receive_data(chunk)
            elif op % 3 == 2:
                packet_id = 0xF0 if chunk[:1] == b"\xf0" else (chunk[:1] or b"\0")[0] % 0xE0
                link.receive_data(encode_packet(packet_id, chunk[1:]))
            elif host:
                link.send(decode_host_message(chunk))
            elif link.next_pending() is not None:  # the register works on its oldest task
                link.send(_device_action(link, chunk))
            link.data_to_send()
            while link.next_event() is not NEED_DATA:
                pass
        except AtolError:
            return


def _device_action(link: Any, chunk: bytes) -> Any:
    """The register's next step on its oldest task, chosen by the chunk's first byte."""
    from protocols.atol.events import TaskCompleted, TaskResumed, TaskStarted, TaskWaiting

    tid = link.next_pending()
    kind = chunk[0] % 4 if chunk else 0
    if kind == 0:
        return TaskStarted(tid=tid)
    if kind == 1:
        return TaskWaiting(tid=tid)
    if kind == 2:
        return TaskResumed(tid=tid)
    return TaskCompleted(tid=tid, answer=chunk[1:], error=bool(chunk[0] & 4))


# --- ФН and OFD ---------------------------------------------------------------------------------


def check_fn_frames(data: bytes) -> None:
    """ФН frames: commands (the ФН's side) and answers to each command (the KKT's side)."""
    from protocols.fn import COMMANDS, FnError
    from protocols.fn._commands import decode_answer, decode_command
    from protocols.fn._frame import MAX_DATA, encode_frame

    reader = Reader(data)
    command = reader.pick(list(COMMANDS.values()))
    frame = reader.rest()
    # The bytes as a frame, and framed with a good CRC: a mutated CRC is right once in 65,536
    # tries, so without the second the command decoders behind it would hardly be reached.
    frames = [frame, encode_frame(frame[0], frame[1 : 1 + MAX_DATA])] if frame else [frame]
    for each in frames:
        try:
            decoded = decode_command(each)
        except FnError:
            pass
        else:
            _same("decode(encode(x))", decode_command(decoded.encode()), decoded)
        try:
            answer = decode_answer(each, command)
        except FnError:
            continue
        _same("answer round trip", decode_answer(answer.encode(), command), answer)


def _fn_link(host: bool) -> Callable[[bytes], None]:
    def check(data: bytes) -> None:
        from protocols.fn import FnConnection, FnError, Role
        from protocols.fn._commands import RawAnswer, RawCommand
        from protocols.fn._connection import ConnectionClosed
        from protocols.fn._frame import encode_frame

        link = FnConnection(Role.HOST if host else Role.DEVICE)
        for op, chunk in steps(data):  # 0 bytes in, 1 a send, 2 a well-formed frame in
            try:
                if op % 3 == 0:
                    link.receive_data(chunk)
                elif op % 3 == 2:
                    link.receive_data(encode_frame(chunk[0], chunk[1:]) if chunk else b"")
                elif host:
                    link.send(RawCommand(chunk[0] if chunk else 0x30, chunk[1:]))
                else:
                    link.send(RawAnswer(chunk))
                while not isinstance(event := link.next_event(), ConnectionClosed):
                    if _is_sentinel(event):
                        break
            except FnError:
                return

    return check


def _is_sentinel(event: object) -> bool:
    import enum

    return isinstance(event, enum.Enum)


def check_ofd_container(data: bytes) -> None:
    """The session header, the container and the operator ack (document 7)."""
    from protocols.ofd import Container, OfdError, OperatorAck, SessionHeader
    from protocols.tlv import TlvError

    try:
        header = SessionHeader.decode(data)
    except OfdError:
        pass
    else:
        _same("header round trip", SessionHeader.decode(header.encode()), header)
    try:
        container = Container.decode(data, verify_crc=False)
    except OfdError:
        pass
    else:
        _same("container round trip", Container.decode(container.encode()), container)
    with contextlib.suppress(OfdError, TlvError):
        OperatorAck.from_tlv(data)


def _ofd_session(role: str) -> Callable[[bytes], None]:
    def check(data: bytes) -> None:
        from protocols.ofd import (
            ConnectionClosed,
            Container,
            Message,
            OfdConnection,
            OfdError,
            Role,
        )

        link = OfdConnection(Role(role))
        for op, chunk in steps(data):
            try:
                if op % 2 == 0:
                    link.receive_data(chunk)
                else:
                    link.send(
                        Message.wrap(Container.decode(chunk, verify_crc=False), client_id="1")
                    )
                while True:
                    event = link.next_event()
                    if isinstance(event, Message):
                        _same("message round trip", _reread(role, event), event)
                    elif isinstance(event, ConnectionClosed) or _is_sentinel(event):
                        break
            except OfdError:
                return

    return check


def _reread(role: str, message: Any) -> Any:
    from protocols.ofd import OfdConnection, Role

    other = OfdConnection(Role(role))
    other.receive_data(message.encode())
    return other.next_event()


def _ofd_seeds() -> list[bytes]:
    header, container = _hex("ffd", "session-header")[0], _hex("ffd", "ofd-container")[0]
    return [
        header,
        container,
        header[:-6] + len(container).to_bytes(2, "little") + header[-4:] + container,
    ]


# --- front doors --------------------------------------------------------------------------------


def check_wire(data: bytes) -> None:
    """The ZeroMQ door's requests: msgpack frames refused with WireError and nothing else."""
    from engine.wire import WireError, decode_request

    with contextlib.suppress(WireError):
        decode_request(data)
    with contextlib.suppress(WireError):
        decode_request(_wire_frame(Reader(data)))


def _wire_frame(reader: Reader) -> bytes:
    """A structured request built from the input: a known op, an id, and mutated arguments."""
    from engine.wire import OPERATIONS

    request: dict[str, Any] = {"v": 1, "id": reader.number(2), "op": reader.pick(OPERATIONS)}
    body = _seed_body(reader)
    request |= {
        "receipt": {"format": reader.pick(("atol_v5", "komtet", "kassa")), "body": body},
        "receipts": [body],
        "job": reader.pick((1, "1", None, -1)),
        "operation": reader.pick(("sell", "buy", "sell_refund")),
    }
    for _ in range(reader.byte() % 4):
        key = reader.pick(sorted(request))
        request[key] = _value(reader)
    packed: bytes = msgpack.packb(request, use_bin_type=True, default=str)
    return packed


@cache
def _wire_by_hypothesis() -> Callable[[bytes], object]:
    """check_wire_structured's engine: hypothesis draws a request from libFuzzer's bytes.

    The strategy knows the wire's shape (the version, an id, an op, each op's argument names
    and a receipt body from the seeds), so most inputs reach an op's own reader instead of
    stopping at msgpack or the envelope.
    """
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from engine.wire import OPERATIONS, WireError, decode_request

    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**63), max_value=2**64 - 1)
        | st.floats(allow_nan=True)
        | st.text(max_size=80)
        | st.binary(max_size=40)
        | st.sampled_from(["main", "sell", "atol_v5", "komtet", "kassa", "csv", "open", "close"])
    )
    values = st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=12,
    )
    bodies = st.sampled_from([*_bodies()["atol"], *_bodies()["komtet"]])
    receipt = st.fixed_dictionaries(
        {"format": st.sampled_from(["atol_v5", "komtet", "kassa", "x"]), "body": bodies | values},
        optional={"operation": st.sampled_from(["sell", "buy_refund", "nonsense"]) | values},
    )
    arguments = [
        "external_id", "group", "job", "after", "limit", "start", "end", "register", "form",
        "action", "receipts",
    ]  # fmt: skip
    requests = st.fixed_dictionaries(
        {
            "v": st.just(1) | values,
            "id": st.integers(min_value=0, max_value=2**63 - 1) | values,
            "op": st.sampled_from(OPERATIONS) | values,
        },
        optional={"receipt": receipt, **{name: values for name in arguments}},
    )

    @settings(database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(requests)
    def one(request: dict[str, Any]) -> None:
        try:
            frame = msgpack.packb(request, use_bin_type=True)
        except (ValueError, TypeError, OverflowError):  # not msgpack: nothing to send
            return
        with contextlib.suppress(WireError):
            decode_request(frame)

    fuzz: Callable[[bytes], object] = one.hypothesis.fuzz_one_input  # type: ignore[attr-defined]
    return fuzz


def check_wire_structured(data: bytes) -> None:
    """The ZeroMQ door's requests as hypothesis draws them: WireError or a request."""
    _wire_by_hypothesis()(data)


@cache
def _bodies() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"atol": [], "komtet": []}
    for path in sorted(SEEDS.glob("*.json")):
        if path.name != "vectors.json":
            out[path.name.split("-")[0]].append(path.read_text())
    return out


def _seed_body(reader: Reader, kind: str | None = None) -> Any:
    texts = _bodies()[kind] if kind else [*_bodies()["atol"], *_bodies()["komtet"]]
    body = json.loads(reader.pick(texts), parse_float=Decimal)
    for _ in range(reader.byte() % 8):
        _mutate(body, reader)
    return body


def _value(reader: Reader) -> Any:
    """One JSON-ish value of a kind the input chooses: the edges a body's fields meet."""
    choice = reader.byte() % 12
    size = reader.byte()
    raw = reader.chunk(size % 64)
    values: list[Any] = [
        None,
        bool(size & 1),
        reader.number(8) - (1 << 63),
        Decimal(reader.number(4)).scaleb(-(size % 12)),
        raw.decode("utf-8", "replace"),
        "x" * (size * 64),
        [],
        {},
        {"": None},
        [raw.decode("latin-1")],
        -size,
        "1e" + str(size),
    ]
    return values[choice]


def _mutate(body: Any, reader: Reader) -> None:
    """Replace, drop or add one node somewhere in ``body``, walking where the input says."""
    node = body
    for _ in range(reader.byte() % 6):
        children = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
        children = [c for c in children if isinstance(c[1], dict | list)]
        if not children:
            break
        node = reader.pick(children)[1]
    if isinstance(node, dict):
        keys = sorted(node) or ["x"]
        key = reader.pick(keys)
        action = reader.byte() % 3
        if action == 0:
            node.pop(key, None)
        elif action == 1:
            node[key] = _value(reader)
        else:
            node[reader.chunk(reader.byte() % 8).decode("latin-1")] = _value(reader)
    elif isinstance(node, list):
        if node and reader.byte() & 1:
            node[reader.byte() % len(node)] = _value(reader)
        else:
            node.append(copy.deepcopy(node[0]) if node else _value(reader))


def _ingress(kind: str) -> Callable[[bytes], None]:
    def check(data: bytes) -> None:
        from protocols.ingress import IngressError, load_json

        if data[:1] == b"{":
            try:
                body = load_json(data)
            except IngressError:
                return
        else:
            body = _seed_body(Reader(data), kind)
        if isinstance(body, dict):
            _ingress_body(kind, body, Reader(data[-1:]))

    return check


def _ingress_body(kind: str, body: dict[str, Any], reader: Reader) -> None:
    """Parse; what parses goes back to the format and must parse to the same receipt."""
    from protocols.ingress import (
        IngressError,
        check_atol_v5,
        check_komtet_task,
        parse_atol_v5,
        parse_komtet_task,
        to_atol_v5,
        to_komtet_task,
    )
    from protocols.ingress import load_json as load

    operations = ("sell", "buy", "sell_refund", "buy_refund", "sell_correction", "nonsense")
    try:
        if kind == "atol":
            operation = reader.pick(operations)
            check_atol_v5(operation, body)
            request = parse_atol_v5(operation, body)
        else:
            check_komtet_task(body)
            task = parse_komtet_task(body)
    except IngressError:
        return
    from protocols.ingress import dump_json

    try:
        if kind == "atol":
            back_operation, back = to_atol_v5(request)
            again: Any = parse_atol_v5(back_operation, load(dump_json(back)))
            _same("atol round trip", again.receipt, request.receipt)
        else:
            again = parse_komtet_task(load(dump_json(to_komtet_task(task))))
            _same("komtet round trip", again.receipt, task.receipt)
    except IngressError:
        return


def _ingress_seeds(kind: str) -> list[bytes]:
    return [text.encode() for text in _bodies()[kind]] + [bytes((i, 0, 0, 0)) for i in range(4)]


def _wire_seeds() -> list[bytes]:
    base: dict[str, Any] = {"v": 1, "id": 1, "op": "ping"}
    seeds: list[bytes] = [msgpack.packb(base), bytes(range(8))]
    for body in _bodies()["atol"][:1]:
        receipt = {"format": "atol_v5", "operation": "sell", "body": body}
        request = base | {"op": "submit", "receipt": receipt}
        seeds.append(msgpack.packb(request, use_bin_type=True))
    return seeds


# --- the emulator's register personalities, and the engine's codecs against them --------------


def _register(kind: str) -> tuple[Any, _Clock]:
    """A freshly registered register of one personality, for one input: runs are reproducible."""
    from emulator.atol import AtolRegister, AtolTiming, atol_model_named
    from emulator.fn import FiscalStorage, FnLimits
    from emulator.serve import INN, START, identity
    from emulator.shtrih import ShtrihRegister
    from emulator.timing import RegisterTiming, model_named
    from protocols.documents.reports import RegistrationReport
    from protocols.tlv.enums import TaxSystem

    numbers = identity(0, 0)
    fn = FiscalStorage(number=numbers.fn_number, limits=FnLimits())
    fn.register(
        START,
        RegistrationReport(
            user_inn=INN,
            user="ООО Фаззер",
            registration_number=numbers.registration_number,
            fn_number=numbers.fn_number,
            kkt_serial=numbers.kkt_serial,
            tax_systems=int(TaxSystem.OSN | TaxSystem.USN_INCOME),
            place="fuzz.kassa.example",
            address="г. Москва",
            ofd_inn="7709364346",
        ),
        timer=0.0,
    )
    fn.acknowledge(fn.last_fd_number)
    clock = _Clock()
    serial = int(numbers.kkt_serial)
    if kind == "atol":
        timing = AtolTiming(atol_model_named("atol-30f"), seed=0, index=0)
        atol = AtolRegister(fn, timing, start=START, kkt_serial=serial, clock=clock, origin=0.0)
        return atol, clock
    shtrih_timing = RegisterTiming(model_named("shtrih-m-01f"), seed=0, index=0)
    shtrih = ShtrihRegister(
        fn, shtrih_timing, start=START, kkt_serial=serial, clock=clock, origin=0.0
    )
    return shtrih, clock


class _Clock:
    """The register's clock, moved by each command's own duration: a fuzz run is reproducible."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def check_emulator_shtrih(data: bytes) -> None:
    """The Shtrih register fed raw request payloads; every answer decodes on the engine's side."""
    from protocols.shtrih import REGISTRY, ShtrihError, command_code, decode_answer

    register, clock = _register("shtrih")
    for _, payload in steps(data):
        answer, duration = register.execute(payload)
        clock.now += duration + 1.0
        try:
            code = command_code(payload)
        except ShtrihError:
            continue
        _same("answer echoes the command", command_code(answer), code)
        if code in REGISTRY:
            try:
                decode_answer(answer)
            except ShtrihError as exc:
                raise Broken(
                    f"the emulator's answer {answer.hex()} does not decode: {exc}"
                ) from exc


def check_emulator_atol(data: bytes) -> None:
    """The ATOL register fed raw requests; every answer decodes on the engine's side."""
    from protocols.atol import AtolError, decode_answer, decode_request

    register, clock = _register("atol")
    for _, payload in steps(data):
        answer, duration = register.execute(payload)
        clock.now += duration + 1.0
        try:
            request = decode_request(payload)
        except AtolError:
            continue
        try:
            decode_answer(request, answer)
        except AtolError as exc:
            raise Broken(f"the emulator's answer {answer.hex()} does not decode: {exc}") from exc


def _shtrih_requests() -> list[bytes]:
    from protocols.shtrih import commands as c

    requests = _payloads(_shtrih_v1_frames())
    requests += [spec.request().encode() for spec in _defaults(c.REGISTRY.values())]
    return requests


def _defaults(specs: Any) -> Iterator[Any]:
    for spec in specs:
        try:
            spec.request()
        except TypeError:
            continue
        yield spec


def _atol_requests() -> list[bytes]:
    from protocols.atol import REQUESTS

    out = []
    for cls in REQUESTS.values():
        try:
            out.append(cls().encode())
        except (TypeError, ValueError):
            continue
    return out


# --- the registry -------------------------------------------------------------------------------


def _targets() -> dict[str, Target]:
    from protocols.shtrih import LinkV1Device, LinkV1Host, LinkV2Device, LinkV2Host

    v1, v2 = _shtrih_v1_frames, _shtrih_v2_frames
    found = [
        Target("tlv", "FFD TLV codec: decode, and decode(encode(x)) = x", check_tlv, _tlv_seeds),
        Target("ffd", "FFD document decoder and the receipt read from it", check_ffd, _tlv_seeds),
        Target(
            "tlv-reference",
            "differential: the TLV decoder against benchmarks/reference_tlv.py",
            check_tlv_reference,
            _tlv_seeds,
        ),
        Target(
            "shtrih-v1-host",
            "Shtrih link v1, host role (Kassa's driver)",
            _shtrih_link(LinkV1Host, host=True, v2=False),
            lambda: _link_seeds(v1(), b"\x10\x1e\0\0\0"),
        ),
        Target(
            "shtrih-v1-device",
            "Shtrih link v1, device role (the emulator)",
            _shtrih_link(LinkV1Device, host=False, v2=False),
            lambda: _link_seeds(v1(), b"\x10\0"),
        ),
        Target(
            "shtrih-v2-host",
            "Shtrih link v2, host role",
            _shtrih_link(LinkV2Host, host=True, v2=True),
            lambda: _link_seeds(v2(), b"\x10\x1e\0\0\0"),
        ),
        Target(
            "shtrih-v2-device",
            "Shtrih link v2, device role",
            _shtrih_link(LinkV2Device, host=False, v2=True),
            lambda: _link_seeds(v2(), b"\x10\0"),
        ),
        Target(
            "shtrih-commands",
            "Shtrih request and answer decoders, decode(encode(x)) = x",
            check_shtrih_commands,
            _shtrih_requests,
        ),
        Target(
            "atol-transport",
            "ATOL v3 packets, the frame reader and v2 frames",
            check_atol_transport,
            lambda: _hex("atol-v3") + _hex("atol-v2"),
        ),
        Target(
            "atol-taskbuffer",
            "ATOL task buffer messages and the register's TaskBuffer",
            check_atol_taskbuffer,
            lambda: [script(*((0, f[4:-1]) for f in _hex("atol-v3")))],
        ),
        Target(
            "atol-commands",
            "ATOL application requests and answers",
            check_atol_commands,
            lambda: [b"\0" + r for r in _atol_requests()],
        ),
        Target(
            "atol-host",
            "ATOL host connection (Kassa's driver)",
            check_atol_host,
            lambda: [script(*((0, f) for f in _hex("atol-v3")))],
        ),
        Target(
            "atol-device",
            "ATOL device connection (the emulator's)",
            check_atol_device,
            lambda: [script(*((0, f) for f in _hex("atol-v3")), (1, b""), (1, b"\0\0"))],
        ),
        Target(
            "fn-frames",
            "ФН frames: commands and answers, decode(encode(x)) = x",
            check_fn_frames,
            lambda: [b"\0" + f for f in _hex("fn")],
        ),
        Target(
            "fn-host",
            "the KKT side of the ФН link",
            _fn_link(host=True),
            lambda: [script((1, b"\x30"), (0, f)) for f in _hex("fn")],
        ),
        Target(
            "fn-device",
            "the ФН side of the ФН link",
            _fn_link(host=False),
            lambda: [script((0, f), (1, b"")) for f in _hex("fn")],
        ),
        Target(
            "ofd-container",
            "OFD session header, container and operator ack",
            check_ofd_container,
            _ofd_seeds,
        ),
        Target(
            "ofd-client",
            "OFD session, client role (the KKT)",
            _ofd_session("client"),
            lambda: [script((1, s)) for s in _ofd_seeds()],
        ),
        Target(
            "ofd-server",
            "OFD session, server role (the OFD)",
            _ofd_session("server"),
            lambda: [script((0, s)) for s in _ofd_seeds()],
        ),
        Target("wire", "the ZeroMQ door's request decoder", check_wire, _wire_seeds, slow=True),
        Target(
            "wire-structured",
            "the ZeroMQ door's requests drawn by hypothesis strategies from the fuzzer's bytes",
            check_wire_structured,
            lambda: [bytes(64), bytes(range(256))],
            slow=True,
        ),
        Target(
            "atol-online",
            "ATOL Online v5 ingress: parse, check, and back to ATOL",
            _ingress("atol"),
            lambda: _ingress_seeds("atol"),
            slow=True,
        ),
        Target(
            "komtet",
            "KOMTET ingress: parse, check, and back to KOMTET",
            _ingress("komtet"),
            lambda: _ingress_seeds("komtet"),
            slow=True,
        ),
        Target(
            "emulator-shtrih",
            "the Shtrih register fed raw requests; differential: its answers decode in the engine",
            check_emulator_shtrih,
            lambda: [script(*((0, r) for r in _shtrih_requests()[:16]))],
            slow=True,
        ),
        Target(
            "emulator-atol",
            "the ATOL register fed raw requests; differential: its answers decode in the engine",
            check_emulator_atol,
            lambda: [script(*((0, r) for r in _atol_requests()))],
            slow=True,
        ),
    ]
    return {target.name: target for target in found}


def check_selftest(data: bytes) -> None:
    """A planted bug, for tests/fuzz only: any input that starts with 0xAB fails."""
    if data[:1] == b"\xab":
        raise Broken("the planted bug: an input starting with AB")


@cache
def targets() -> dict[str, Target]:
    """Every byte-level target by name (the HTTP door is run by :mod:`fuzz.http`).

    KASSA_FUZZ_SELFTEST=1 adds ``selftest``, a target with a planted bug, so that the tests
    can watch a real finding go through libFuzzer, the minimiser and the report.
    """
    found = _targets()
    if os.environ.get("KASSA_FUZZ_SELFTEST") == "1":
        found["selftest"] = Target("selftest", "a planted bug", check_selftest, lambda: [b"\0"])
    return found

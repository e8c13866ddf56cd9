"""Fuzzing every RPC of the public API against the whole stack, on each broker.

Each request is built from the proto descriptors, so every field of every IngestService request
message (nested messages, maps and repeated fields included, and any field added later) gets
hostile values: empty and long strings, path traversal, control characters and NUL, negative
and extreme integers, unknown enum values, invalid UTF-8 in bytes. Whatever arrives, the answer
is OK or a clear client-facing status with a message; never UNKNOWN, INTERNAL, a dropped
connection or a hang. Bytes that are not a valid encoding of a method's request message, sent
to any method of any ragline service, are INVALID_ARGUMENT.

Repeatable and bounded: hypothesis runs derandomized (the same examples on every run) with a
fixed number of examples per RPC.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import DecodeError, Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ragline.v1 import chunker_service_pb2, embedder_service_pb2, indexer_service_pb2
from ragline_client.v1 import ingest_service_pb2
from tests.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300), pytest.mark.xdist_group(__name__)]

ROOT = Path(__file__).resolve().parents[2]

INGEST = ingest_service_pb2.DESCRIPTOR.services_by_name["IngestService"]
# Every ragline service and the stack process that serves it.
SERVICES = {
    "gateway": INGEST,
    "chunker": chunker_service_pb2.DESCRIPTOR.services_by_name["ChunkerService"],
    "embedder": embedder_service_pb2.DESCRIPTOR.services_by_name["EmbedderService"],
    "indexer": indexer_service_pb2.DESCRIPTOR.services_by_name["IndexerService"],
}

# A clear answer to a bad or unlucky request. UNKNOWN and INTERNAL are bugs; UNAVAILABLE would
# mean a service dropped the call or a stage it needs is down; DEADLINE_EXCEEDED, a hang.
ALLOWED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
FUZZ = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- hostile values ------------------------------------------------------------------------------

HOSTILE_TEXT = [
    "",
    " ",
    "../../etc/passwd",
    "..\\..\\windows\\system32",
    "x\ny",
    "\r\n",
    "\x00",
    "nul\x00inside",
    "\x1b[31m",
    "\u202eevil",
    "\ufeff",
    "😀" * 64,
    "é" * 300,
    "a" * 100_000,
    "%s%n%x",
    "' OR 1=1 --",
    "{ns}:q:*",
    "*",
    "(1-0",
    "0-0",
    "1-0",
    f"{2**64 - 1}-{2**64 - 1}",
    f"{2**64}-0",
    "sha256-" + "0" * 32,
    "text/plain",
    "sentence-transformers/all-MiniLM-L6-v2",
]
HOSTILE_BYTES = [
    b"",
    b"\x00" * 64,
    b"\xff\xfe\xfd",  # not UTF-8
    b"\xc3\x28",  # a broken two-byte sequence
    b"\xed\xa0\x80",  # an encoded surrogate
    b"%PDF-1.7\n%%EOF",
    b"<html><script>",
    b"a" * 200_000,
]


def _ints(bits: int, signed: bool) -> st.SearchStrategy[int]:
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    edges = sorted(x for x in {lo, hi, 0, 1, -1, 384, 10_000_000} if lo <= x <= hi)
    return st.sampled_from(edges) | st.integers(lo, hi)


texts = st.sampled_from(HOSTILE_TEXT) | st.text(max_size=50)
blobs = st.sampled_from(HOSTILE_BYTES) | st.binary(max_size=3000)
_SCALARS: dict[int, st.SearchStrategy[Any]] = {
    FieldDescriptor.TYPE_STRING: texts,
    FieldDescriptor.TYPE_BYTES: blobs,
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    FieldDescriptor.TYPE_INT32: _ints(32, True),
    FieldDescriptor.TYPE_SINT32: _ints(32, True),
    FieldDescriptor.TYPE_SFIXED32: _ints(32, True),
    FieldDescriptor.TYPE_INT64: _ints(64, True),
    FieldDescriptor.TYPE_SINT64: _ints(64, True),
    FieldDescriptor.TYPE_SFIXED64: _ints(64, True),
    FieldDescriptor.TYPE_UINT32: _ints(32, False),
    FieldDescriptor.TYPE_FIXED32: _ints(32, False),
    FieldDescriptor.TYPE_UINT64: _ints(64, False),
    FieldDescriptor.TYPE_FIXED64: _ints(64, False),
    FieldDescriptor.TYPE_FLOAT: st.floats(width=32),
    FieldDescriptor.TYPE_DOUBLE: st.floats(),
}


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    if field.type == FieldDescriptor.TYPE_ENUM:
        known = [v.number for v in field.enum_type.values]
        return st.sampled_from(known) | _ints(32, True)  # open enums: unknown values arrive too
    return _SCALARS[field.type]


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Messages of `descriptor` with hostile values in any subset of its fields."""
    cls = message_factory.GetMessageClass(descriptor)

    @st.composite
    def build(draw: st.DrawFn) -> Message:
        msg = cls()
        for field in descriptor.fields:
            if not draw(st.booleans()):
                continue  # unset: the default value is one more case
            target = getattr(msg, field.name)
            if _is_map(field):
                key_field, value_field = field.message_type.fields
                for key in draw(st.lists(_scalar(key_field), max_size=4)):
                    if value_field.message_type is None:
                        target[key] = draw(_scalar(value_field))
                    elif depth < 2:
                        target[key].CopyFrom(draw(messages(value_field.message_type, depth + 1)))
            elif field.message_type is not None:
                if depth >= 2:
                    continue
                sub = messages(field.message_type, depth + 1)
                if _repeated(field):
                    for item in draw(st.lists(sub, max_size=3)):
                        target.add().CopyFrom(item)
                else:
                    target.CopyFrom(draw(sub))
            elif _repeated(field):
                target.extend(draw(st.lists(_scalar(field), max_size=5)))
            else:
                setattr(msg, field.name, draw(_scalar(field)))
        return msg

    return build()


# -- calling -----------------------------------------------------------------------------------


def _path(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


def call(
    channel: grpc.Channel, method: MethodDescriptor, payload: bytes
) -> tuple[grpc.StatusCode, str]:
    """Sends `payload` as the request of `method`; the status and message it answers with.

    A stream that answers is cut after its first message: a watch of a live job never ends."""
    try:
        if method.server_streaming:
            stream = channel.unary_stream(_path(method))(payload, timeout=30)
            next(iter(stream), None)
            stream.cancel()
        else:
            channel.unary_unary(_path(method))(payload, timeout=30)
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or ""  # type: ignore[attr-defined]
    return grpc.StatusCode.OK, ""


def check_answer(method: MethodDescriptor, code: grpc.StatusCode, details: str, sent: Any) -> None:
    if code == grpc.StatusCode.CANCELLED and method.server_streaming:
        return  # cut by us after its first message
    assert code in ALLOWED, f"{method.name} answered {code.name}: {details!r}\nfor {sent!r}"[:3000]
    if code != grpc.StatusCode.OK:
        assert details.strip(), f"{method.name} answered {code.name} without saying why"


@pytest.fixture(scope="module")
def channels(stack: Stack) -> Iterator[dict[str, grpc.Channel]]:
    opened = {name: grpc.insecure_channel(stack.addresses[name]) for name in SERVICES}
    yield opened
    for ch in opened.values():
        ch.close()


# -- the tests ---------------------------------------------------------------------------------

PUBLIC_METHODS = list(INGEST.methods)


@pytest.mark.parametrize("method", PUBLIC_METHODS, ids=lambda m: m.name)
@FUZZ
@given(data=st.data())
def test_every_field_of_every_public_rpc_gets_a_clear_answer(
    channels: dict[str, grpc.Channel], method: MethodDescriptor, data: st.DataObject
) -> None:
    request = data.draw(messages(method.input_type), label="request")
    code, details = call(channels["gateway"], method, request.SerializeToString())
    check_answer(method, code, details, request)


# Encodings broken in the ways a decoder can notice: truncated varints and lengths, invalid
# wire types, field number 0, an unmatched group end, and invalid UTF-8 in a string field.
CORRUPT = [
    b"\x08",
    b"\x0a\x05ab",
    b"\xff" * 11,
    b"\x0f",
    b"\x00\x01",
    b"\x0c",
    b"\x0a\x02\xc3\x28",
    b"\x12\x03\xff\xfe\xfd",
    b"\x1a\x01\x80",
    b"\x0a\x80\x80\x80\x80\x10",
]
ALL_METHODS = [(name, m) for name, service in SERVICES.items() for m in service.methods]


def _undecodable(method: MethodDescriptor, raw: bytes) -> bool:
    try:
        message_factory.GetMessageClass(method.input_type).FromString(raw)
    except DecodeError:
        return True
    return False


@pytest.mark.parametrize(("service", "method"), ALL_METHODS, ids=lambda v: getattr(v, "name", v))
def test_known_corrupt_bytes_are_invalid_argument_on_every_method(
    channels: dict[str, grpc.Channel], service: str, method: MethodDescriptor
) -> None:
    corrupt = [raw for raw in CORRUPT if _undecodable(method, raw)]
    assert len(corrupt) >= 6, "the corrupt examples no longer exercise this method"
    for raw in corrupt:
        code, details = call(channels[service], method, raw)
        assert code == grpc.StatusCode.INVALID_ARGUMENT, f"{raw!r}: {code.name}: {details}"
        assert method.input_type.full_name in details, details


@pytest.mark.parametrize("method", PUBLIC_METHODS, ids=lambda m: m.name)
@settings(FUZZ, max_examples=40)
@given(raw=st.binary(min_size=1, max_size=64))
def test_random_bytes_are_invalid_argument_unless_they_decode(
    channels: dict[str, grpc.Channel], method: MethodDescriptor, raw: bytes
) -> None:
    code, details = call(channels["gateway"], method, raw)
    if _undecodable(method, raw):
        assert code == grpc.StatusCode.INVALID_ARGUMENT, f"{raw!r}: {code.name}: {details}"
    else:
        check_answer(method, code, details, raw)


def test_the_fuzzed_rpcs_are_those_of_the_proto() -> None:
    # The generated code, not the .proto, drives the tests above: they must agree.
    proto = (ROOT / "protos" / "ragline" / "v1" / "ingest_service.proto").read_text()
    declared = set(re.findall(r"^\s*rpc\s+(\w+)\s*\(", proto, flags=re.MULTILINE))
    assert {m.name for m in PUBLIC_METHODS} == declared
    assert {"ListDeadLetters", "RequeueDeadLetters", "PurgeDeadLetters"} <= declared

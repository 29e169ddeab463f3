"""Payload encoding and redaction."""

from __future__ import annotations

import copy
from decimal import Decimal

import msgpack
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from traces._codec import (
    MASK,
    Payloads,
    decode,
    encode,
    encode_many,
    encode_redacted,
    msgpack_array,
    redact,
)


def test_round_trip_keeps_types_exact() -> None:
    payload = {
        "f": 0.1 + 0.2,
        "big": 2**63 - 1,
        "neg": -(2**40),
        "none": None,
        "flag": True,
        "raw": b"\x00\xff",
        "text": "BTC/USDT ünïcode",
        "nested": {"list": [1, 2.5, None, {"x": [b"y"]}]},
        3: "int key",
    }
    assert decode(encode(payload)) == payload


def test_numpy_and_friends_are_converted() -> None:
    payload = {
        "f": np.float32(1.5),
        "i": np.int64(7),
        "b": np.bool_(True),
        "a": np.arange(3),
        "t": (1, 2),
        "d": Decimal("0.1"),
        "s": {4},
    }
    out = decode(encode(payload))
    assert out == {"f": 1.5, "i": 7, "b": True, "a": [0, 1, 2], "t": [1, 2], "d": "0.1", "s": [4]}
    assert type(out["i"]) is int


def test_unencodable_value_names_its_type() -> None:
    with pytest.raises(TypeError, match="cannot encode a object"):
        encode({"x": object()})


SECRET_PAYLOAD = {
    "apiKey": "AKIA-SECRET-1",
    "nested": {"SECRET": "s3cr3t-2", "list": [{"listenKey": "lk-3"}, {"Password": "pw-4"}]},
    "headers": {"X-MBX-APIKEY": "hdr-5"},
    "url": "https://api.binance.com/api/v3/order?symbol=BTCUSDT&timestamp=1&signature=abcdef6",
    "body": b"symbol=BTCUSDT&signature=rawsig7",
    "token": None,
    "tokenId": "not-a-secret",
    "price": 30_000.0,
}


def test_redact_masks_keys_at_any_depth_and_case() -> None:
    before = copy.deepcopy(SECRET_PAYLOAD)
    out = redact(SECRET_PAYLOAD)
    assert before == SECRET_PAYLOAD  # input untouched
    assert out["apiKey"] == MASK
    assert out["nested"]["SECRET"] == MASK
    assert out["nested"]["list"] == [{"listenKey": MASK}, {"Password": MASK}]
    assert out["headers"]["X-MBX-APIKEY"] == MASK
    assert out["url"].endswith("&signature=***")
    assert "symbol=BTCUSDT" in out["url"]
    assert out["body"] == b"symbol=BTCUSDT&signature=***"
    assert out["token"] is None
    assert out["tokenId"] == "not-a-secret"
    assert out["price"] == 30_000.0


def test_encode_redacted_never_contains_secrets() -> None:
    data = encode_redacted(SECRET_PAYLOAD)
    for secret in (
        b"AKIA-SECRET-1",
        b"s3cr3t-2",
        b"lk-3",
        b"pw-4",
        b"hdr-5",
        b"abcdef6",
        b"rawsig7",
    ):
        assert secret not in data
    assert decode(data) == redact(SECRET_PAYLOAD)


def test_clean_payload_is_encoded_unchanged() -> None:
    clean = {"symbol": "BTC/USDT", "price": 1.0, "info": {"orderId": 5}}
    assert encode_redacted(clean) == encode(clean)
    assert redact(clean) == clean


def test_encode_many_redacts_only_the_secret_rows() -> None:
    rows = [{"p": 1}, {"p": 2, "secret": "zzz-top"}, {"p": 3}]
    blob, sizes = encode_many(rows)
    assert b"zzz-top" not in blob
    payloads = Payloads.pack(blob, sizes)
    assert payloads.decode_all() == [{"p": 1}, {"p": 2, "secret": MASK}, {"p": 3}]


def test_payloads_select_without_copying_the_blob() -> None:
    p = Payloads.from_bytes([encode({"i": i}) for i in range(10)])
    sub = p.take(np.array([7, 2]))
    assert sub.blob is p.blob
    assert sub.decode_all() == [{"i": 7}, {"i": 2}]
    assert sub.compact().decode_all() == [{"i": 7}, {"i": 2}]
    assert Payloads.concat([p.take(slice(0, 2)), sub]).decode_all() == [
        {"i": 0},
        {"i": 1},
        {"i": 7},
        {"i": 2},
    ]


_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=20),
)
_json = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(database=None)  # no .hypothesis/ directory in the checkout
@given(st.dictionaries(st.text(max_size=8), _json, max_size=6))
def test_round_trip_property(payload: dict[str, object]) -> None:
    assert decode(encode(payload)) == payload


@settings(database=None)
@given(
    st.dictionaries(st.text(max_size=8), _json, max_size=4),
    st.sampled_from(["apiKey", "SECRET", "signature", "listen_key", "privateKey", "token"]),
    st.text(alphabet="abcdefXYZ0123456789", min_size=12, max_size=20),
)
def test_secret_never_survives_encoding(payload: dict[str, object], key: str, secret: str) -> None:
    assume(secret.encode() not in encode(payload))  # the secret appears only under its key
    payload = {**payload, "deep": {"x": [{key: secret}]}}
    data = encode_redacted(payload)
    assert secret.encode() not in data
    assert msgpack.unpackb(data, raw=False, strict_map_key=False)["deep"]["x"][0][key] == MASK


def test_encode_many_scans_only_the_rows_it_is_told_to() -> None:
    # Bars are numbers by construction: their bytes are not scanned (floats can look like
    # "key" or "pass"), while every other row still is.
    rows = [{"close": [1.0, 2.0]}, {"url": "https://x?signature=abc"}]
    blob, sizes = encode_many(rows, [False, True])
    first, second = blob[: sizes[0]], blob[sizes[0] :]
    assert decode(first) == rows[0]
    assert decode(second) == {"url": "https://x?signature=***"}
    _, unscanned = encode_many(rows[1:], [False])
    assert unscanned[0] == len(encode(rows[1]))  # told not to scan: kept as it is


@pytest.mark.parametrize("n", [0, 1, 15, 16, 65_535, 65_536])
def test_msgpack_array_is_the_bytes_of_the_list(n: int) -> None:
    """A numpy column encodes to exactly the bytes of its list (each array header size, and
    the odd floats), so a trace holds the same bytes whichever way a block was built."""
    rng = np.random.default_rng(n)
    floats = rng.normal(size=n) * 1e6
    floats[: min(n, 4)] = [np.nan, -0.0, np.inf, 5e-324][: min(n, 4)]
    times = 1_640_995_200_000 + 60_000 * np.arange(n, dtype=np.int64)
    for column in (floats, floats.astype(np.float32), times):
        raw = msgpack_array(column)
        assert raw is not None
        assert bytes(raw) == encode(column.tolist())
        assert encode({"c": raw}) == encode({"c": column.tolist()})  # as a payload's value


def test_msgpack_array_leaves_small_ints_to_msgpack() -> None:
    # msgpack writes ints below 2**32 in fewer bytes than this encoder would.
    assert msgpack_array(np.array([1, 2, 3])) is None
    assert msgpack_array(np.array([1 << 32, -1], dtype=np.int64)) is None

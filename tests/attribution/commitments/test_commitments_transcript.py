"""Hash-chained transcript (attribution.commitments.transcript)."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from pathlib import Path

import pytest

from attribution.commitments import (
    PROTOCOL_VERSION,
    Direction,
    Transcript,
    TranscriptEntry,
    TranscriptError,
    chain_step,
    genesis_head,
    verify_chain,
)

SESSION = bytes(range(16))

MESSAGES: list[tuple[Direction, str, bytes]] = [
    (Direction.VERIFIER_TO_PROVER, "open", b"task digest, parameters, com_E, com_C, com_M"),
    (Direction.PROVER_TO_VERIFIER, "open_reply", b"\x00" * 32 + b"nonce"),
    (Direction.PROVER_TO_VERIFIER, "commit_attribution", bytes(range(256))),
    (Direction.VERIFIER_TO_PROVER, "reveal_challenge", b""),
    (Direction.LOCAL, "decision", b"ACCEPT"),
]


def by_hand(version: int, session: bytes, msgs: list[tuple[Direction, str, bytes]]) -> bytes:
    """docs/protocol.md section 3, written out with hashlib and struct only."""
    head = hashlib.sha256(b"attribution.v1/transcript" + struct.pack(">I", version) + session)
    h = head.digest()
    for d, label, msg in msgs:
        lb = label.encode("utf-8")
        h = hashlib.sha256(
            h
            + bytes([int(d)])
            + struct.pack(">I", len(lb))
            + lb
            + struct.pack(">Q", len(msg))
            + msg
        ).digest()
    return h


def filled() -> Transcript:
    t = Transcript(SESSION)
    for d, label, msg in MESSAGES:
        t.append(d, label, msg)
    return t


def test_directions() -> None:
    assert [int(d) for d in Direction] == [1, 2, 3]
    assert Direction(1) is Direction.VERIFIER_TO_PROVER
    assert Direction(2) is Direction.PROVER_TO_VERIFIER
    assert Direction(3) is Direction.LOCAL


def test_genesis_formula() -> None:
    assert PROTOCOL_VERSION == 1
    expected = hashlib.sha256(b"attribution.v1/transcript\x00\x00\x00\x01" + SESSION).digest()
    assert genesis_head(1, SESSION) == expected
    t = Transcript(SESSION)
    assert t.head == t.genesis == expected
    assert len(t) == 0
    assert genesis_head(2, SESSION) != expected
    assert genesis_head(1, SESSION + b"\x00") != expected


def test_chain_formula_and_append() -> None:
    t = Transcript(SESSION)
    heads = [t.append(d, label, msg) for d, label, msg in MESSAGES]
    assert t.head == heads[-1] == by_hand(1, SESSION, MESSAGES)
    for i in range(len(MESSAGES)):
        assert heads[i] == by_hand(1, SESSION, MESSAGES[: i + 1])
    entries = t.entries
    assert [e.index for e in entries] == [1, 2, 3, 4, 5]
    assert [e.head for e in entries] == heads
    assert [(e.direction, e.label, e.msg) for e in entries] == MESSAGES
    entries.clear()  # a copy: the transcript is unaffected
    assert len(t) == 5


def test_append_accepts_plain_ints_and_rejects_bad_directions() -> None:
    t = Transcript(SESSION)
    t.append(2, "x", b"")
    assert t.entries[0].direction is Direction.PROVER_TO_VERIFIER
    with pytest.raises(ValueError, match="4"):
        t.append(4, "x", b"")
    with pytest.raises(ValueError, match="0 is not a valid Direction"):
        t.append(0, "x", b"")
    with pytest.raises(TypeError):
        t.append(1, "x", "text")  # type: ignore[arg-type]
    assert len(t) == 1


def test_length_prefixes_separate_label_and_message() -> None:
    a = chain_step(b"\x00" * 32, Direction.LOCAL, "ab", b"c")
    b = chain_step(b"\x00" * 32, Direction.LOCAL, "a", b"bc")
    c = chain_step(b"\x00" * 32, Direction.PROVER_TO_VERIFIER, "ab", b"c")
    assert len({a, b, c}) == 3


def test_unicode_label_is_utf8() -> None:
    t = Transcript(SESSION)
    t.append(Direction.LOCAL, "d\u00e9cision\u2028", b"m")
    assert t.head == by_hand(1, SESSION, [(Direction.LOCAL, "d\u00e9cision\u2028", b"m")])


@pytest.mark.parametrize(
    ("version", "session", "exc"),
    [
        (1, b"", ValueError),
        (1, b"x" * 256, ValueError),
        (-1, SESSION, ValueError),
        (2**32, SESSION, ValueError),
        (True, SESSION, TypeError),
        (1, "text", TypeError),
    ],
)
def test_genesis_rejects_bad_inputs(version: int, session: bytes, exc: type[Exception]) -> None:
    with pytest.raises(exc):
        genesis_head(version, session)


def test_verify_chain_accepts_intact_chain() -> None:
    t = filled()
    verify_chain(t.entries, t.head, protocol_version=1, session_id=SESSION)
    t.verify(t.head)
    verify_chain([], genesis_head(1, SESSION), protocol_version=1, session_id=SESSION)


def _altered(entries: list[TranscriptEntry], k: int, **kw: object) -> list[TranscriptEntry]:
    e = entries[k]
    fields = {"index": e.index, "direction": e.direction, "label": e.label, "msg": e.msg}
    fields["head"] = e.head
    fields.update(kw)
    return [*entries[:k], TranscriptEntry(**fields), *entries[k + 1 :]]  # type: ignore[arg-type]


@pytest.mark.parametrize("k", range(len(MESSAGES)))
def test_verify_chain_names_first_broken_entry(k: int) -> None:
    t = filled()
    entries = t.entries
    e = entries[k]
    other = Direction.LOCAL if e.direction != Direction.LOCAL else Direction.VERIFIER_TO_PROVER
    variants = [
        _altered(entries, k, msg=e.msg + b"!"),
        _altered(entries, k, label=e.label + "x"),
        _altered(entries, k, direction=other),
        _altered(entries, k, head=bytes(32)),
    ]
    if e.msg:
        variants.append(_altered(entries, k, msg=bytes([e.msg[0] ^ 1]) + e.msg[1:]))
    for bad in variants:
        with pytest.raises(TranscriptError, match=f"entry {k + 1} ") as info:
            verify_chain(bad, t.head, protocol_version=1, session_id=SESSION)
        assert info.value.index == k + 1


def test_verify_chain_detects_reordering_deletion_and_insertion() -> None:
    t = filled()
    e = t.entries
    with pytest.raises(TranscriptError) as info:
        verify_chain([e[0], e[2], e[1], *e[3:]], t.head, protocol_version=1, session_id=SESSION)
    assert info.value.index == 2
    with pytest.raises(TranscriptError) as info:
        verify_chain([*e[:2], *e[3:]], t.head, protocol_version=1, session_id=SESSION)
    assert info.value.index == 3
    with pytest.raises(TranscriptError) as info:  # truncated log: every entry chains
        verify_chain(e[:4], t.head, protocol_version=1, session_id=SESSION)
    assert info.value.index is None


def test_verify_chain_detects_wrong_session_version_or_expected_head() -> None:
    t = filled()
    for kwargs in (
        {"protocol_version": 2, "session_id": SESSION},
        {
            "protocol_version": 1,
            "session_id": SESSION[:-1],
        },
    ):
        with pytest.raises(TranscriptError) as info:
            verify_chain(t.entries, t.head, **kwargs)  # type: ignore[arg-type]
        assert info.value.index == 1
    for i in range(32):
        bad = bytearray(t.head)
        bad[i] ^= 0x01
        with pytest.raises(TranscriptError, match="expected") as info:
            t.verify(bytes(bad))
        assert info.value.index is None


def test_rewritten_and_rechained_log_is_caught_by_expected_head() -> None:
    t = filled()
    signed_head = t.head
    forged = Transcript(SESSION)
    for d, label, msg in MESSAGES:
        forged.append(d, label, b"forged" if label == "commit_attribution" else msg)
    forged.verify(forged.head)  # internally consistent...
    with pytest.raises(TranscriptError, match="not the one committed to"):
        forged.verify(signed_head)  # ...but not the signed one
    with pytest.raises(TranscriptError):
        Transcript.from_jsonl(forged.to_jsonl(), expected_head=signed_head)


def test_jsonl_round_trip_through_a_file(tmp_path: Path) -> None:
    t = filled()
    t.append(Direction.LOCAL, "note \u2028 \u00e9", b"\xff\x00")
    path = tmp_path / "transcript.jsonl"
    path.write_text(t.to_jsonl(), encoding="utf-8")
    loaded = Transcript.from_jsonl(path.read_text(encoding="utf-8"), expected_head=t.head)
    assert loaded.head == t.head
    assert loaded.entries == t.entries
    assert loaded.session_id == SESSION
    assert loaded.protocol_version == 1
    assert loaded.to_jsonl() == t.to_jsonl()
    # The loaded transcript keeps chaining.
    assert loaded.append(1, "more", b"m") == t.append(1, "more", b"m")


def test_jsonl_layout() -> None:
    t = Transcript(b"sid")
    t.append(Direction.VERIFIER_TO_PROVER, "open", b"hi")
    lines = t.to_jsonl().split("\n")
    assert lines[-1] == ""
    assert lines[0] == (
        '{"format":"attribution.v1/transcript","h0":"'
        + genesis_head(1, b"sid").hex()
        + '","protocol_version":1,"session_id":"c2lk"}'
    )
    assert (
        lines[1]
        == '{"direction":1,"head":"' + t.head.hex() + '","i":1,"label":"open","msg":"aGk="}'
    )
    assert Transcript(b"sid").to_jsonl().count("\n") == 1


def _edit_line(text: str, lineno: int, **changes: object) -> str:
    lines = text.split("\n")
    obj = json.loads(lines[lineno - 1])
    obj.update(changes)
    lines[lineno - 1] = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return "\n".join(lines)


@pytest.mark.parametrize("k", range(1, len(MESSAGES) + 1))
def test_from_jsonl_names_tampered_entry(k: int, tmp_path: Path) -> None:
    t = filled()
    path = tmp_path / "t.jsonl"
    path.write_text(_edit_line(t.to_jsonl(), k + 1, msg=base64.b64encode(b"evil").decode()))
    with pytest.raises(TranscriptError, match=f"entry {k} ") as info:
        Transcript.from_jsonl(path.read_text())
    assert info.value.index == k
    swapped = _edit_line(t.to_jsonl(), k + 1, direction=3 if MESSAGES[k - 1][0] != 3 else 1)
    with pytest.raises(TranscriptError) as info:
        Transcript.from_jsonl(swapped)
    assert info.value.index == k


def test_from_jsonl_rejects_malformed_files() -> None:
    good = filled().to_jsonl()
    with pytest.raises(TranscriptError, match="no header"):
        Transcript.from_jsonl("")
    with pytest.raises(TranscriptError, match="h0") as info:
        Transcript.from_jsonl(_edit_line(good, 1, h0="00" * 32))
    assert info.value.index == 0
    with pytest.raises(TranscriptError, match="entry 1 ") as info:  # other session id
        Transcript.from_jsonl(
            _edit_line(
                _edit_line(good, 1, session_id="AAAA"),
                1,
                h0=genesis_head(1, b"\x00\x00\x00").hex(),
            )
        )
    assert info.value.index == 1
    with pytest.raises(TranscriptError, match="format"):
        Transcript.from_jsonl(_edit_line(good, 1, format="other"))
    with pytest.raises(TranscriptError, match="keys"):
        Transcript.from_jsonl(_edit_line(good, 3, extra=1))
    with pytest.raises(TranscriptError, match="base64") as info:
        Transcript.from_jsonl(_edit_line(good, 3, msg="not base64!"))
    assert info.value.index == 2
    with pytest.raises(TranscriptError, match="non-canonical base64"):
        Transcript.from_jsonl(_edit_line(good, 5, msg="AB=="))  # same bytes as "AA=="
    with pytest.raises(TranscriptError, match="hex"):
        Transcript.from_jsonl(_edit_line(good, 2, head="zz" * 32))
    with pytest.raises(TranscriptError, match="not JSON") as info:
        Transcript.from_jsonl(good.replace("\n", "\n{", 2))
    with pytest.raises(TranscriptError, match=r"9 is not a valid Direction"):
        Transcript.from_jsonl(_edit_line(good, 2, direction=9))
    with pytest.raises(TranscriptError, match="numbered"):
        Transcript.from_jsonl(_edit_line(good, 2, i=7))
    with pytest.raises(TranscriptError, match="integer"):
        Transcript.from_jsonl(_edit_line(good, 2, i="1"))

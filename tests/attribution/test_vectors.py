"""Golden vectors in testdata/vectors/: recomputed independently (hashlib, json, struct,
cryptography only -- no package hashing/encoding helper), then by the package itself."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

VECTORS = Path(__file__).resolve().parents[2] / "testdata" / "vectors"
DOMAIN = b"attribution.v1/"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / f"{name}.json").read_text())
    return data


def h(x: str) -> bytes:
    return bytes.fromhex(x)


# -- independent re-implementation -------------------------------------------------------


def ref_xof(label: str, seed: bytes, bind: bytes, idx: list[int], n: int) -> bytes:
    x = hashlib.shake_256(DOMAIN + label.encode("ascii") + b"\x00" + seed + bind)
    for i in idx:
        x.update(struct.pack(">Q", i))
    return x.digest(n)


def ref_canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def ref_mth(hashes: list[bytes]) -> bytes:
    if not hashes:
        return hashlib.sha256(b"").digest()
    if len(hashes) == 1:
        return hashes[0]
    k = 1 << ((len(hashes) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + ref_mth(hashes[:k]) + ref_mth(hashes[k:])).digest()


def ref_root_from_proof(leaf: bytes, index: int, size: int, proof: list[bytes]) -> bytes | None:
    """RFC 9162 section 2.1.3.2."""
    if index >= size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def ref_message(tag: str, fields: list[bytes]) -> bytes:
    return DOMAIN + tag.encode() + b"\x00" + b"".join(struct.pack(">Q", len(f)) + f for f in fields)


def ref_verify(pub: bytes, sig: bytes, tag: str, fields: list[bytes]) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(pub).verify(sig, ref_message(tag, fields))
    except InvalidSignature:
        return False
    return True


def test_subsets_independent() -> None:
    for c in load("subsets")["cases"]:
        if c["kind"] == "xof":
            got = ref_xof(c["label"], h(c["seed"]), h(c["bind"]), c["idx"], c["n_bytes"])
            assert got.hex() == c["expected"], c["name"]
        elif c["kind"] == "bind":
            d = hashlib.sha256(DOMAIN + b"bind")
            for p in c["parts"]:
                d.update(struct.pack(">Q", len(h(p))) + h(p))
            assert d.hexdigest() == c["expected"], c["name"]
        else:
            stream = ref_xof(c["label"], h(c["seed"]), h(c["bind"]), c["idx"], 4 * c["n"])
            draws = struct.unpack(f"<{c['n']}I", stream)
            assert "".join("1" if u < c["p32"] else "0" for u in draws) == c["expected"]


def test_protocol_independent() -> None:
    for c in load("protocol")["cases"]:
        k = c["kind"]
        if k == "seed_commitment":
            pre = DOMAIN + b"seed-commit\x00" + c["label"].encode() + b"\x00"
            got = hashlib.sha256(pre + h(c["seed"]) + h(c["salt"])).digest()
        elif k == "session_id":
            got = hashlib.sha256(DOMAIN + b"session\x00" + h(c["open_bytes"])).digest()[:16]
        elif k == "canonical_json":
            got = ref_canonical(c["value"])
        else:
            fh = {
                path: hashlib.sha256(ref_canonical(v)).hexdigest()
                for path, v in _flatten(c["certificate"]).items()
            }
            assert fh == c["field_hashes"]
            got = hashlib.sha256(DOMAIN + b"certificate\x00" + ref_canonical(fh)).digest()
        assert got.hex() == c["expected"], c["name"]


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(obj, dict) and obj:
        for key, v in obj.items():
            out.update(_flatten(v, f"{prefix}{key}."))
    elif isinstance(obj, list) and obj:
        for i, v in enumerate(obj):
            out.update(_flatten(v, f"{prefix}{i}."))
    else:
        out[prefix[:-1]] = obj
    return out


def test_merkle_independent() -> None:
    data = load("merkle")
    c = data["cases"][0]
    payload = h(c["values_f64le"])
    step = 8 * c["leaf_values"]
    leaves = [payload[i : i + step] for i in range(0, len(payload), step)]
    hashes = [hashlib.sha256(b"\x00" + x).digest() for x in leaves]
    assert [x.hex() for x in hashes] == c["leaf_hashes"]
    assert ref_mth(hashes).hex() == c["root"]
    inc = c["inclusion"]
    proof = [h(p) for p in inc["proof"]]
    got = ref_root_from_proof(hashes[inc["index"]], inc["index"], inc["tree_size"], proof)
    assert got is not None
    assert got.hex() == c["root"]
    n = len(payload) // 8
    tag = c["vector_digest"]["tag"].encode()
    header = DOMAIN + tag + b"\x00" + struct.pack(">BQBQ", 1, n, 1, n)
    assert header.hex() == c["vector_digest"]["header"]
    assert hashlib.sha256(header + payload).hexdigest() == c["vector_digest"]["expected"]
    assert b"\x00" * 7 + b"\x80" not in [payload[i : i + 8] for i in range(0, len(payload), 8)]
    for t in data["tampered"]:
        got = ref_root_from_proof(
            h(t["leaf_hash"]), t["index"], t["tree_size"], [h(p) for p in t["proof"]]
        )
        assert got is None or got.hex() != c["root"], t["name"]


def _chain(version: int, sid: bytes, entries: list[dict[str, Any]]) -> list[bytes]:
    head = hashlib.sha256(DOMAIN + b"transcript" + struct.pack(">I", version) + sid).digest()
    heads = [head]
    for e in entries:
        label, msg = e["label"].encode(), h(e["msg"])
        head = hashlib.sha256(
            head
            + struct.pack(">BI", e["direction"], len(label))
            + label
            + struct.pack(">Q", len(msg))
            + msg
        ).digest()
        heads.append(head)
    return heads


def test_transcript_independent() -> None:
    data = load("transcript")
    c = data["cases"][0]
    heads = _chain(c["protocol_version"], h(c["session_id"]), c["entries"])
    assert heads[0].hex() == c["h0"]
    assert [x.hex() for x in heads[1:]] == [e["head"] for e in c["entries"]]
    for t in data["tampered"]:
        heads = _chain(c["protocol_version"], h(c["session_id"]), t["entries"])
        bad = [i for i, e in enumerate(t["entries"], 1) if heads[i].hex() != e["head"]]
        assert bad, t["name"]
        assert bad[0] == t["first_bad_entry"], t["name"]


def test_signatures_independent() -> None:
    data = load("signatures")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    priv = Ed25519PrivateKey.from_private_bytes(h(data["private_seed"]))
    pub = priv.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert pub.hex() == data["public_key"]
    for c in data["cases"]:
        fields = [h(f) for f in c["fields"]]
        msg = ref_message(c["tag"], fields)
        assert msg.hex() == c["message"], c["name"]
        assert priv.sign(msg).hex() == c["signature"], c["name"]  # Ed25519 is deterministic
        assert ref_verify(pub, h(c["signature"]), c["tag"], fields)
    assert len(data["tampered"]) >= 3 * len(data["cases"])
    for t in data["tampered"]:
        fields = [h(f) for f in t["fields"]]
        assert not ref_verify(pub, h(t["signature"]), t["tag"], fields), t["name"]


# -- the package produces the same values ------------------------------------------------


def test_package_matches_vectors() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "make_vectors", Path(__file__).resolve().parents[2] / "tools" / "make_vectors.py"
    )
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    built = json.loads(json.dumps(mod.build()))
    for name, content in built.items():
        assert content == load(name), f"{name}.json is out of date: run tools/make_vectors.py"


@pytest.mark.parametrize("name", ["signatures"])
def test_package_statements_verify(name: str) -> None:
    from attribution.commitments import signing_message, verify

    data = load(name)
    pub = h(data["public_key"])
    for c in data["cases"]:
        fields = [h(f) for f in c["fields"]]
        assert signing_message(c["tag"], *fields).hex() == c["message"]
        assert verify(pub, h(c["signature"]), c["tag"], *fields)
    for t in data["tampered"]:
        assert not verify(pub, h(t["signature"]), t["tag"], *[h(f) for f in t["fields"]])


def test_domain_tags_are_distinct_and_prefix_free() -> None:
    """Domain separation: every tag name of attribution.encoding is distinct, and no tag
    written without its 0x00 terminator is a prefix of another tag (otherwise the bytes
    after one could be read as the other)."""
    from attribution import encoding

    tags = [
        getattr(encoding, name)
        for name in dir(encoding)
        if name.split("_")[0] in ("TAG", "XOF", "SIG")
    ]
    assert len(tags) == len(set(tags)) >= 20
    for short in encoding.UNTERMINATED:
        assert short in tags
        assert [t for t in tags if t != short and t.startswith(short)] == []

"""Generate the golden vectors in testdata/vectors/*.json from the package.

Usage: ``.venv/bin/python tools/make_vectors.py [OUT_DIR]`` (default testdata/vectors).
The output is deterministic; tests/test_vectors.py checks it against an independent
re-implementation and against the package.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from attribution.commitments import (
    SigningKey,
    Transcript,
    canonical_f64_bytes,
    inclusion_proof,
    vector_digest,
    vector_header,
    vector_leaves,
    vector_root,
)
from attribution.commitments.merkle import leaf_hash
from attribution.commitments.transcript import Direction
from attribution.encoding import PROTOCOL_VERSION, canonical_json
from attribution.protocol import statements
from attribution.protocol.certificate import certificate_digest, field_hashes
from attribution.protocol.common import seed_commitment, session_id_for
from attribution.protocol.messages import VerdictMessage
from attribution.subsets import bernoulli_mask, bind_digest, training_seed, xof

SIGNING_SEED = bytes(range(32))


def _b(n: int, start: int = 0) -> bytes:
    return bytes((start + i) % 256 for i in range(n))


def subsets() -> dict[str, Any]:
    seed, bind = _b(32, 1), bind_digest(b"task", b"evaluate")
    cases: list[dict[str, Any]] = []
    for name, label, idx, n in [
        ("xof_subset_0_0_0", "subset", [0, 0, 0], 64),
        ("xof_seed_2_5_1", "seed", [2, 5, 1], 32),
        ("xof_spot_no_index", "spot", [], 16),
    ]:
        cases.append(
            {
                "name": name,
                "kind": "xof",
                "label": label,
                "seed": seed.hex(),
                "bind": bind.hex(),
                "idx": idx,
                "n_bytes": n,
                "expected": xof(label, seed, bind, idx, n).hex(),
            }
        )
    cases.append(
        {
            "name": "bind_task_evaluate",
            "kind": "bind",
            "parts": [b"task".hex(), b"evaluate".hex()],
            "expected": bind.hex(),
        }
    )
    p32 = 1 << 31
    mask = bernoulli_mask(seed, bind, [1, 3, 0], 40, p32)
    cases.append(
        {
            "name": "bernoulli_mask_40_p_half",
            "kind": "bernoulli_mask",
            "label": "subset",
            "seed": seed.hex(),
            "bind": bind.hex(),
            "idx": [1, 3, 0],
            "n": 40,
            "p32": p32,
            "expected": "".join("1" if m else "0" for m in mask),
        }
    )
    cases.append(
        {
            "name": "training_seed_0_0_0",
            "kind": "xof",
            "label": "seed",
            "seed": seed.hex(),
            "bind": bind.hex(),
            "idx": [0, 0, 0],
            "n_bytes": 32,
            "expected": training_seed(seed, bind, [0, 0, 0]).hex(),
        }
    )
    return {"description": "SHAKE-256 derivations and the bind digest", "cases": cases}


def protocol() -> dict[str, Any]:
    seed, salt = _b(32, 7), _b(32, 100)
    open_bytes = canonical_json({"type": "open", "protocol_version": PROTOCOL_VERSION})
    msg = VerdictMessage(
        verdict="ACCEPT",
        reason="all checks passed",
        certificate_digest=_b(32, 3),
        seed_c=_b(32, 4),
        salt_c=_b(32, 5),
        seed_m=_b(32, 6),
        salt_m=_b(32, 7),
        signature=_b(64, 8),
    )
    cert = {"session_id": "00" * 16, "verdict": "ACCEPT", "stats": {"n": 3, "rho": 0.5}}
    hashes = field_hashes(cert)
    cases = [
        {
            "name": "seed_commitment_c",
            "kind": "seed_commitment",
            "label": "seed_c",
            "seed": seed.hex(),
            "salt": salt.hex(),
            "expected": seed_commitment("seed_c", seed, salt).hex(),
        },
        {
            "name": "session_id",
            "kind": "session_id",
            "open_bytes": open_bytes.hex(),
            "expected": session_id_for(open_bytes).hex(),
        },
        {
            "name": "canonical_json_verdict_message",
            "kind": "canonical_json",
            "value": msg.to_dict(),
            "expected": msg.to_bytes().hex(),
        },
        {
            "name": "canonical_json_non_ascii",
            "kind": "canonical_json",
            "value": {"b": [1, 2.5, None, True], "a": "caf\u00e9"},
            "expected": canonical_json({"b": [1, 2.5, None, True], "a": "caf\u00e9"}).hex(),
        },
        {
            "name": "certificate_digest",
            "kind": "certificate_digest",
            "certificate": cert,
            "field_hashes": hashes,
            "expected": certificate_digest(hashes).hex(),
        },
    ]
    return {"description": "seed commitment, session id, canonical JSON", "cases": cases}


def merkle() -> dict[str, Any]:
    v = np.arange(2049, dtype=np.float64) / 7.0 - 100.0
    v[5] = -0.0  # canonical bytes write +0.0
    leaves = vector_leaves(v)
    proof = inclusion_proof(leaves, 1)
    root = vector_root(v)
    bad = bytearray(proof[0])
    bad[0] ^= 1
    case = {
        "name": "vector_2049",
        "kind": "vector_root",
        "values_f64le": canonical_f64_bytes(v).hex(),
        "leaf_values": 1024,
        "leaf_hashes": [leaf_hash(x).hex() for x in leaves],
        "root": root.hex(),
        "inclusion": {
            "index": 1,
            "tree_size": len(leaves),
            "proof": [p.hex() for p in proof],
        },
        "vector_digest": {
            "tag": "x",
            "header": vector_header("x", v.shape).hex(),
            "expected": vector_digest("x", v).hex(),
        },
    }
    tampered = [
        {
            "name": "proof_bit_flipped",
            "leaf_hash": leaf_hash(leaves[1]).hex(),
            "index": 1,
            "tree_size": len(leaves),
            "proof": [bytes(bad).hex()] + [p.hex() for p in proof[1:]],
        },
        {
            "name": "wrong_index",
            "leaf_hash": leaf_hash(leaves[1]).hex(),
            "index": 0,
            "tree_size": len(leaves),
            "proof": [p.hex() for p in proof],
        },
    ]
    return {
        "description": "RFC 6962 Merkle root and inclusion proof of a float64 vector",
        "cases": [case],
        "tampered": tampered,
    }


def transcript() -> dict[str, Any]:
    session_id = _b(16, 9)
    t = Transcript(session_id, PROTOCOL_VERSION)
    entries = [
        (Direction.VERIFIER_TO_PROVER, "open", b'{"type":"open"}'),
        (Direction.PROVER_TO_VERIFIER, "opened", b'{"type":"opened"}'),
        (Direction.LOCAL, "decide", b""),
    ]
    out = []
    for d, label, msg in entries:
        head = t.append(d, label, msg)
        out.append({"direction": int(d), "label": label, "msg": msg.hex(), "head": head.hex()})
    tampered = [dict(e) for e in out]
    tampered[1]["msg"] = b'{"type":"openeD"}'.hex()
    return {
        "description": "hash-chained transcript of 3 entries",
        "cases": [
            {
                "name": "chain_3",
                "protocol_version": PROTOCOL_VERSION,
                "session_id": session_id.hex(),
                "h0": t.genesis.hex(),
                "entries": out,
            }
        ],
        "tampered": [{"name": "entry_2_msg_altered", "first_bad_entry": 2, "entries": tampered}],
    }


def signatures() -> dict[str, Any]:
    key = SigningKey.from_seed(SIGNING_SEED)
    sid, head, root, digest = _b(16, 9), _b(32, 50), _b(32, 60), _b(32, 70)
    named = [
        ("opened", statements.opened(sid, _b(32, 40), head)),
        ("commit_attribution", statements.commit_attribution(sid, root, 3, 1000, head)),
        ("commit_evaluations", statements.commit_evaluations(sid, root, 48, 2, head)),
        ("verdict", statements.verdict(sid, head, "REJECT", "spot check 3 failed", digest)),
    ]
    cases, tampered = [], []
    for name, st in named:
        sig = statements.sign(key, st)
        fields = [f.hex() for f in st.fields]
        cases.append(
            {
                "name": name,
                "tag": st.tag,
                "fields": fields,
                "message": st.message().hex(),
                "signature": sig.hex(),
            }
        )
        bad_sig = bytearray(sig)
        bad_sig[10] ^= 0x80
        bad_field = list(fields)
        bad_field[0] = ("ff" + bad_field[0][2:])
        tampered += [
            {"name": f"{name}_signature_altered", "tag": st.tag, "fields": fields,
             "signature": bytes(bad_sig).hex()},
            {"name": f"{name}_field_altered", "tag": st.tag, "fields": bad_field,
             "signature": sig.hex()},
            {"name": f"{name}_wrong_tag", "tag": st.tag + "x", "fields": fields,
             "signature": sig.hex()},
        ]
    return {
        "description": "Ed25519 signed statements",
        "private_seed": SIGNING_SEED.hex(),
        "public_key": key.public_key_raw.hex(),
        "cases": cases,
        "tampered": tampered,
    }


GENERATORS = {
    "subsets": subsets,
    "protocol": protocol,
    "merkle": merkle,
    "transcript": transcript,
    "signatures": signatures,
}


def build() -> dict[str, dict[str, Any]]:
    """Every vector file's content by file stem."""
    return {name: fn() for name, fn in GENERATORS.items()}


def main(argv: list[str]) -> None:
    out = Path(argv[1]) if len(argv) > 1 else Path(__file__).parent.parent / "testdata/vectors"
    out.mkdir(parents=True, exist_ok=True)
    for name, content in build().items():
        text = json.dumps(content, indent=1, sort_keys=True, ensure_ascii=True) + "\n"
        (out / f"{name}.json").write_text(text)


if __name__ == "__main__":
    main(sys.argv)

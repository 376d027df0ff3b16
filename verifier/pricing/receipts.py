"""Contributor receipts: one contributor's attribution, checkable with no other data.

A receipt (``vattr receipt REPORT --contributor I --out FILE``) is one JSON object in
canonical form -- sorted keys, no spaces, ASCII, floats as Python's shortest repr, bytes
as lowercase hex (hashes, keys, signatures) or RFC 4648 base64 with padding (the leaf
chunk), one ``"\\n"`` at the end. ``verify_receipt`` first requires the file to be exactly
that canonical serialisation of what it parses to, so no byte can change without changing
a checked value. Fields::

    format              "vattr-receipt/1"
    contributor         i (0-based training point)
    shape               [rows, cols] = [T, 1 + N] of the committed matrix
    values              per opened output t (ascending):
                        {output: t, element: j = t * cols + 1 + i, value: a_{t,i},
                         chunk: base64 of leaf j // 1024, leaf_index, offset: j % 1024,
                         proof: [hex sibling hashes, leaf to root], tree_size}
    attribution_root    root of the attribution matrix (RFC 6962 over 1024-value leaves)
    session_id, prover_key, commit_head, prover_signature
                        the Prover's signature on the commitment: Ed25519 over
                        message("commit/attribution", session_id, root,
                                u64be(rows) || u64be(cols), commit_head)
                        (commit_head = transcript head just before that message)
    verifier_key, verdict, reason, transcript_head, certificate_digest, verdict_signature
                        the Verifier's signature on its verdict: Ed25519 over
                        message("verdict", session_id, transcript_head, verdict, reason,
                                certificate_digest)
    field_hashes        the certificate's per-field hashes (verifier/certificate.py):
                        certificate_digest = SHA-256("attribution.v1/certificate" 0x00
                                                     || canonical JSON of field_hashes)
    certificate_fields  certificate leaves by dotted path (task.name, task.n_points,
                        task.n_outputs, task.p, params.epsilon, params.delta,
                        params.outputs.K, guarantee), each = its signed field hash
    payout (optional)   {budget_cents, currency_cents, rule, outputs, weights,
                         normalisers, payout_cents, sha256}: NOT authenticated (see below)

What ``verify_receipt`` checks, with no other input:

1. canonical bytes and the exact schema;
2. every opening: element index and position agree with ``shape``, the tree size is that
   of ``rows * cols`` values, the chunk's value at ``offset`` is ``value``, and the
   inclusion proof leads to ``attribution_root`` (``verify_element``);
3. the Prover signed ``attribution_root`` and ``shape`` in ``session_id``;
4. the Verifier signed ``verdict``/``reason`` over ``certificate_digest`` in the same
   session, ``field_hashes`` hash to that digest, and the signed certificate says this
   session, this root, this Prover key, this Verifier key, this head, this verdict and
   this task shape; the opened outputs are among the verified ones.

Trust: the receipt proves what *this* Verifier key signed; compare its fingerprint
(``SHA-256(verifier_key)``) with the buyer's published key out of band. ``commit_head``
is checked only as part of the Prover's signature (linking it to the transcript needs
the transcript). The payout block's normalisers depend on every contributor's value, so
the receipt cannot authenticate them: ``verify`` checks that ``payout_cents`` is the
largest-remainder rounding (floor or floor + 1) of ``budget * share`` with the share
recomputed *exactly* from the opened values and the stated normalisers, plus a SHA-256
over the block (integrity against corruption, not authentication: anyone can recompute
it). ``verify_receipt(..., report=PATH)`` re-prices from the full report.

Disclosure: besides the contributor's own values, a receipt reveals the other values in
its 1024-value leaf chunk (up to 1023 other elements: other contributors' attributions,
intercepts and other outputs' values) and ``ceil(log2(leaves))`` sibling hashes, which
reveal nothing about the values they cover. When ``T * (1 + N) <= 1024`` the chunk is the
whole matrix. Hiding the neighbours needs a different commitment (e.g. salted per-value
leaves ``H(salt_j || value_j)`` with the salt opened only for ``j``), a protocol change not
made here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from attribution.commitments import (
    LEAF_VALUES,
    ElementOpening,
    Transcript,
    fingerprint,
    open_element,
    verify_element,
)
from attribution.commitments.errors import VerificationError
from attribution.errors import UsageError
from attribution.protocol import statements
from attribution.protocol.certificate import canonical, certificate_digest, flatten
from attribution.protocol.messages import AttributionCommitment, VerdictMessage, decode
from verifier.pricing.payouts import LoadedReport, Pricing

FORMAT = "vattr-receipt/1"
CERT_FIELDS = (
    "task.name",
    "task.n_points",
    "task.n_outputs",
    "task.p",
    "params.epsilon",
    "params.delta",
    "guarantee",
)
TOP_KEYS = {
    "format",
    "contributor",
    "shape",
    "values",
    "attribution_root",
    "session_id",
    "prover_key",
    "commit_head",
    "prover_signature",
    "verifier_key",
    "verdict",
    "reason",
    "transcript_head",
    "certificate_digest",
    "verdict_signature",
    "field_hashes",
    "certificate_fields",
}
VALUE_KEYS = {"output", "element", "value", "chunk", "leaf_index", "offset", "proof", "tree_size"}
PAYOUT_KEYS = {
    "budget_cents",
    "currency_cents",
    "rule",
    "outputs",
    "weights",
    "normalisers",
    "payout_cents",
    "sha256",
}


def receipt_bytes(receipt: dict[str, Any]) -> bytes:
    """The canonical serialisation (module docstring)."""
    return canonical(receipt) + b"\n"  # canonical JSON is ASCII (ensure_ascii)


def payout_digest(receipt: dict[str, Any], payout: dict[str, Any]) -> str:
    """SHA-256 binding the payout block (without ``sha256``) to root and contributor."""
    body = {k: v for k, v in payout.items() if k != "sha256"}
    data = canonical(
        {
            "attribution_root": receipt.get("attribution_root"),
            "contributor": receipt.get("contributor"),
            "payout": body,
        }
    )
    return hashlib.sha256(b"vattr-receipt/payout\x00" + data).hexdigest()


def make_receipt(
    loaded: LoadedReport,
    contributor: int,
    outputs: tuple[int, ...],
    pricing: Pricing | None = None,
    currency_cents: bool = False,
) -> dict[str, Any]:
    """The receipt of ``contributor`` for ``outputs`` (and its payout under ``pricing``)."""
    report, cert = loaded.report, loaded.certificate
    A = loaded.attribution
    cols = A.shape[1]
    if not 0 <= contributor < cols - 1:
        raise UsageError(f"--contributor {contributor} outside 0..{cols - 2}")
    if pricing is not None and pricing.outputs != tuple(sorted(outputs)):
        raise ValueError("the pricing must be for the receipt's outputs")
    flat = A.ravel()
    values = []
    for t in sorted(outputs):
        j = t * cols + 1 + contributor
        op = open_element(flat, j)
        values.append(
            {
                "output": t,
                "element": j,
                "value": float(flat[j]),
                "chunk": base64.b64encode(op.chunk).decode("ascii"),
                "leaf_index": op.leaf_index,
                "offset": op.offset,
                "proof": [h.hex() for h in op.proof],
                "tree_size": op.tree_size,
            }
        )
    transcript = Transcript.from_jsonl(report["transcript_jsonl"])
    entries = transcript.entries
    k = next(i for i, e in enumerate(entries) if e.label == "commit_attribution")
    commit = decode(entries[k].msg, AttributionCommitment)
    commit_head = entries[k - 1].head if k > 0 else transcript.genesis
    vmsg = decode(str(report["verdict_message"]).encode(), VerdictMessage)
    leaves = flatten(cert)
    fields_ = {p: leaves[p] for p in CERT_FIELDS if p in leaves}
    fields_.update({p: v for p, v in leaves.items() if p.startswith("params.outputs.")})
    receipt: dict[str, Any] = {
        "format": FORMAT,
        "contributor": contributor,
        "shape": [commit.rows, commit.cols],
        "values": values,
        "attribution_root": commit.root.hex(),
        "session_id": cert["session_id"],
        "prover_key": cert["prover_key"],
        "commit_head": commit_head.hex(),
        "prover_signature": commit.signature.hex(),
        "verifier_key": cert["verifier_key"],
        "verdict": vmsg.verdict,
        "reason": vmsg.reason,
        "transcript_head": cert["transcript_head"],
        "certificate_digest": vmsg.certificate_digest.hex(),
        "verdict_signature": vmsg.signature.hex(),
        "field_hashes": dict(report["field_hashes"]),
        "certificate_fields": fields_,
    }
    if pricing is not None:
        payout: dict[str, Any] = {
            "budget_cents": pricing.budget_cents,
            "currency_cents": currency_cents,
            "rule": pricing.rule,
            "outputs": list(pricing.outputs),
            "weights": None if pricing.weights is None else [str(w) for w in pricing.weights],
            "normalisers": [str(x) for x in pricing.normalisers],
            "payout_cents": pricing.cents[contributor],
        }
        payout["sha256"] = payout_digest(receipt, payout)
        receipt["payout"] = payout
    return receipt


def disclosure(receipt: dict[str, Any]) -> list[str]:
    """Plain words on what else the receipt reveals (by position in the matrix)."""
    rows, cols = receipt["shape"]
    out = []
    for v in receipt["values"]:
        first = v["leaf_index"] * LEAF_VALUES
        count = len(base64.b64decode(v["chunk"])) // 8
        last = first + count - 1
        others = count - 1
        out.append(
            f"output {v['output']}: the opened leaf holds elements {first}..{last} of "
            f"{rows * cols} (rows {first // cols}..{last // cols}), i.e. {others} values "
            f"besides this contributor's, and the proof has {len(v['proof'])} sibling "
            "hash(es), which reveal nothing about the values they cover"
        )
    return out


# -- verification -----------------------------------------------------------------------
@dataclass
class ReceiptCheck:
    ok: bool = True
    problems: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def fail(self, what: str, why: str) -> None:
        self.ok = False
        self.problems.append(f"{what}: {why}")


class _Bad(Exception):
    """Structural problem: stop checking (the message names the field)."""


def _hex(d: dict[str, Any], key: str, size: int | None = None) -> bytes:
    v = d.get(key)
    if not isinstance(v, str):
        raise _Bad(f"{key}: missing or not a string")
    try:
        raw = bytes.fromhex(v)
    except ValueError as exc:
        raise _Bad(f"{key}: not hex") from exc
    if raw.hex() != v:
        raise _Bad(f"{key}: not lowercase hex without spaces")
    if size is not None and len(raw) != size:
        raise _Bad(f"{key}: {len(raw)} bytes, expected {size}")
    return raw


def _int(d: dict[str, Any], key: str, lo: int = 0) -> int:
    v = d.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or v < lo:
        raise _Bad(f"{key}: missing or not an integer >= {lo}")
    return v


def _str(d: dict[str, Any], key: str) -> str:
    v = d.get(key)
    if not isinstance(v, str):
        raise _Bad(f"{key}: missing or not a string")
    return v


def _fraction(text: Any, what: str) -> Fraction:
    if not isinstance(text, str):
        raise _Bad(f"{what}: not a string")
    try:
        x = Fraction(text)
    except (ValueError, ZeroDivisionError) as exc:
        raise _Bad(f"{what}: {text!r} is not an exact fraction") from exc
    if str(x) != text:
        raise _Bad(f"{what}: {text!r} is not in lowest terms")
    return x


def verify_receipt(data: bytes, report: Path | None = None) -> ReceiptCheck:
    """Check a receipt's bytes (module docstring); never raises on bad content."""
    res = ReceiptCheck()
    try:
        _verify(data, res)
        if res.ok and report is not None:
            _against_report(json.loads(data), report, res)
    except _Bad as exc:
        res.fail("receipt", str(exc))
    return res


def _verify(data: bytes, res: ReceiptCheck) -> None:
    try:
        obj = json.loads(data.decode("ascii"))
    except (ValueError, RecursionError) as exc:  # incl. UnicodeDecodeError, JSONDecodeError
        raise _Bad(f"not ASCII JSON ({type(exc).__name__}: {exc})") from exc
    if not isinstance(obj, dict):
        raise _Bad("not a JSON object")
    try:
        canonical_form = receipt_bytes(obj)
    except (ValueError, RecursionError) as exc:  # NaN / Infinity
        raise _Bad(f"not canonical JSON ({exc})") from exc
    if canonical_form != data:
        raise _Bad("not in canonical form (sorted keys, no spaces, one final newline)")
    keys = set(obj)
    extra, missing = keys - TOP_KEYS - {"payout"}, TOP_KEYS - keys
    if extra or missing:
        raise _Bad(f"fields: unknown {sorted(extra)}, missing {sorted(missing)}")
    if obj["format"] != FORMAT:
        raise _Bad(f"format is not {FORMAT!r}")
    contributor = _int(obj, "contributor")
    shape = obj["shape"]
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(isinstance(x, int) and not isinstance(x, bool) and 0 < x < 2**32 for x in shape)
    ):
        raise _Bad("shape: not [rows, cols] of positive 32-bit integers")
    rows, cols = shape
    if not contributor < cols - 1:
        raise _Bad(f"contributor {contributor} outside a matrix of {cols - 1} contributors")
    root = _hex(obj, "attribution_root", 32)
    session = _hex(obj, "session_id")
    if not session:
        raise _Bad("session_id: empty")
    pkey = _hex(obj, "prover_key", 32)
    vkey = _hex(obj, "verifier_key", 32)
    commit_head = _hex(obj, "commit_head", 32)
    head = _hex(obj, "transcript_head", 32)
    digest = _hex(obj, "certificate_digest", 32)
    psig = _hex(obj, "prover_signature", 64)
    vsig = _hex(obj, "verdict_signature", 64)
    verdict, reason = _str(obj, "verdict"), _str(obj, "reason")
    hashes, cfields = obj["field_hashes"], obj["certificate_fields"]
    if not isinstance(hashes, dict) or not all(
        isinstance(v, str) and len(v) == 64 for v in hashes.values()
    ):
        raise _Bad("field_hashes: not a map of SHA-256 hex digests")
    if not isinstance(cfields, dict):
        raise _Bad("certificate_fields: not an object")
    values = obj["values"]
    if not isinstance(values, list) or not values:
        raise _Bad("values: not a non-empty list")
    res.facts.update(
        {
            "contributor": contributor,
            "verdict": verdict,
            "reason": reason,
            "session_id": session.hex(),
            "verifier_fingerprint": fingerprint(vkey),
            "prover_fingerprint": fingerprint(pkey),
        }
    )

    # 2. openings
    n_values = rows * cols
    opened: dict[int, float] = {}
    seen: list[int] = []
    for k, v in enumerate(values):
        where = f"values.{k}"
        if not isinstance(v, dict) or set(v) != VALUE_KEYS:
            raise _Bad(f"{where}: fields are not {sorted(VALUE_KEYS)}")
        t = _int(v, "output")
        j, leaf, off, size = (_int(v, x) for x in ("element", "leaf_index", "offset", "tree_size"))
        value = v["value"]
        if not isinstance(value, float):
            raise _Bad(f"{where}.value: not a float")
        if seen and t <= seen[-1]:
            raise _Bad(f"{where}.output: outputs must be distinct and ascending")
        seen.append(t)
        if not t < rows:
            res.fail(f"{where}.output", f"{t} outside the {rows} committed rows")
            continue
        if j != t * cols + 1 + contributor:
            res.fail(f"{where}.element", f"{j} is not output {t}, contributor {contributor}")
        if leaf * LEAF_VALUES + off != j:
            res.fail(f"{where}.leaf_index/offset", f"({leaf}, {off}) is not element {j}")
        chunk_text = _str(v, "chunk")
        try:
            chunk = base64.b64decode(chunk_text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _Bad(f"{where}.chunk: not base64") from exc
        if base64.b64encode(chunk).decode("ascii") != chunk_text:
            raise _Bad(f"{where}.chunk: not canonical base64")
        proof_hex = v["proof"]
        if not isinstance(proof_hex, list):
            raise _Bad(f"{where}.proof: not a list")
        proof = tuple(_hex({"h": h}, "h", 32) for h in proof_hex)
        opening = ElementOpening(chunk, leaf, proof, size, off)
        try:
            got = verify_element(opening, root, n_values=n_values)
        except VerificationError as exc:
            res.fail(f"{where}", f"Merkle opening does not verify: {exc}")
            continue
        if got != value:
            res.fail(f"{where}.value", f"{value!r} is not the committed value {got!r}")
            continue
        opened[t] = value

    # 3. the Prover's commitment
    commit_st = statements.commit_attribution(session, root, rows, cols, commit_head)
    if not statements.verify(pkey, psig, commit_st):
        res.fail(
            "prover_signature",
            "the Prover's signature on (session, root, shape) does not verify",
        )

    # 4. the Verifier's verdict and the signed certificate fields
    if certificate_digest(hashes) != digest:
        res.fail("field_hashes", "do not hash to the certificate digest")
    verdict_st = statements.verdict(session, head, verdict, reason, digest)
    if not statements.verify(vkey, vsig, verdict_st):
        res.fail("verdict_signature", "the Verifier's signature on the verdict does not verify")
    signed = {
        "session_id": obj["session_id"],
        "attribution_root": obj["attribution_root"],
        "prover_key": obj["prover_key"],
        "verifier_key": obj["verifier_key"],
        "transcript_head": obj["transcript_head"],
        "verdict": verdict,
        "reason": reason,
    }
    for path, value in (*signed.items(), *cfields.items()):
        try:
            h = hashlib.sha256(canonical(value)).hexdigest()
        except (TypeError, ValueError):
            h = ""
        if hashes.get(path) != h:
            res.fail(f"certificate.{path}", "does not match the signed certificate")
    for path in CERT_FIELDS:
        if path not in cfields and (path in hashes or path != "guarantee"):
            res.fail(f"certificate_fields.{path}", "missing")
    verified: list[int] = []
    for path in sorted(p for p in hashes if p.startswith("params.outputs.")):
        if path not in cfields:
            res.fail(f"certificate_fields.{path}", "missing (the verified outputs)")
        elif isinstance(cfields[path], int):
            verified.append(cfields[path])
    if cfields.get("task.n_outputs") != rows or cfields.get("task.n_points") != cols - 1:
        res.fail("shape", "differs from the certified task's (n_outputs, 1 + n_points)")
    for t in opened:
        if t not in verified:
            res.fail(f"values (output {t})", f"not among the verified outputs {verified}")
    res.facts.update(
        {
            "outputs": sorted(opened),
            "values": {str(t): a for t, a in sorted(opened.items())},
            "task": cfields.get("task.name"),
            "epsilon": cfields.get("params.epsilon"),
            "delta": cfields.get("params.delta"),
            "p": cfields.get("task.p"),
            "guarantee": cfields.get("guarantee"),
        }
    )
    if "payout" in obj and res.ok:
        _check_payout(obj, opened, res)


def _check_payout(obj: dict[str, Any], opened: dict[int, float], res: ReceiptCheck) -> None:
    pay = obj["payout"]
    if not isinstance(pay, dict) or set(pay) != PAYOUT_KEYS:
        raise _Bad(f"payout: fields are not {sorted(PAYOUT_KEYS)}")
    if pay["sha256"] != payout_digest(obj, pay):
        res.fail("payout.sha256", "the payout block was altered (integrity digest)")
        return
    from verifier.pricing.payouts import DEFAULT_RULE, RULES, format_money

    budget, cents = _int(pay, "budget_cents"), _int(pay, "payout_cents")
    rule = pay["rule"]
    outs = pay["outputs"]
    if rule not in RULES or not isinstance(pay["currency_cents"], bool):
        raise _Bad("payout: unknown rule or currency flag")
    if outs != sorted(opened):
        raise _Bad("payout.outputs: not the opened outputs")
    norms = pay["normalisers"]
    if not isinstance(norms, list) or len(norms) != (len(outs) if rule == "weights" else 1):
        raise _Bad("payout.normalisers: wrong count")
    nvals = [_fraction(x, "payout.normalisers") for x in norms]
    vals = [Fraction(opened[t]) for t in outs]
    if rule == "weights":
        ws = pay["weights"]
        if not isinstance(ws, list) or len(ws) != len(outs):
            raise _Bad("payout.weights: not one per output")
        w = [_fraction(x, "payout.weights") for x in ws]
        if any(x < 0 for x in w) or sum(w) <= 0:
            raise _Bad("payout.weights: not non-negative with a positive sum")
        share = Fraction(0)
        for wt, a, s_t in zip(w, vals, nvals, strict=True):
            if wt:
                if s_t <= 0:
                    raise _Bad("payout.normalisers: not positive")
                share += wt / sum(w) * max(a, Fraction(0)) / s_t
    else:
        if pay["weights"] is not None:
            raise _Bad("payout.weights: only for the weights rule")
        total = sum(vals, Fraction(0))
        u = max(total, Fraction(0)) if rule == DEFAULT_RULE else abs(total)
        if nvals[0] <= 0:
            raise _Bad("payout.normalisers: not positive")
        share = u / nvals[0]
    exact = budget * share
    floor = exact.numerator // exact.denominator
    if not (share <= 1 and (cents == floor or (cents == floor + 1 and exact != floor))):
        res.fail(
            "payout.payout_cents",
            f"{cents} is not the rounding of the exact payout {float(exact):.4f} cents",
        )
    res.facts["payout"] = {
        "rule": rule,
        "budget": format_money(budget, pay["currency_cents"]),
        "payout": format_money(cents, pay["currency_cents"]),
        "share": float(share),
        "authenticated": False,
    }


def _against_report(obj: dict[str, Any], report: Path, res: ReceiptCheck) -> None:
    """With the full report: same session and root, and the same payout re-priced."""
    from verifier.pricing.payouts import ReportRefused, compute_payouts, open_report

    try:
        loaded = open_report(report, need_accept=False)
    except ReportRefused as exc:
        res.fail("--report", str(exc))
        return
    cert = loaded.certificate
    if (cert["session_id"], cert["attribution_root"]) != (
        obj["session_id"],
        obj["attribution_root"],
    ):
        res.fail("--report", "is another session or another attribution")
        return
    pay = obj.get("payout")
    if pay is None:
        return
    weights = None if pay["weights"] is None else [Fraction(x) for x in pay["weights"]]
    try:
        pricing = compute_payouts(
            loaded.attribution, pay["outputs"], pay["budget_cents"], pay["rule"], weights
        )
    except UsageError as exc:
        res.fail("payout", f"cannot be re-priced from the report: {exc}")
        return
    if [str(x) for x in pricing.normalisers] != pay["normalisers"]:
        res.fail("payout.normalisers", "differ from the report's")
    if pricing.cents[obj["contributor"]] != pay["payout_cents"]:
        res.fail(
            "payout.payout_cents",
            f"the report pays {pricing.cents[obj['contributor']]} cents",
        )
    if res.ok:
        res.facts["payout"]["authenticated"] = True

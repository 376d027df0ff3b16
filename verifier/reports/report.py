"""Signed audit reports: writing them, and checking them offline (``vattr check``).

A report is ``REPORT.json`` plus ``REPORT.values.npz`` (the attribution, the f-values of
E, the Verifier's spot-check and MSE values). The JSON holds the certificate, its
per-field hashes (:mod:`attribution.protocol.certificate`), the Verifier's signed verdict message,
and the full transcript log (every protocol message as sent). Everything a checker needs
is inside: the Verifier's secret seeds are revealed in the certificate, so any party can
re-derive E, C and M and recompute the decision.

Checks (each failure names the broken field):
1. every certificate field matches its recorded hash, and the hash map matches the
   signed digest; the Verifier's Ed25519 signature verifies;
2. the transcript chain recomputes to the signed head and ends with the verdict message;
3. the open message carries the task digest, parameters and Verifier key of the
   certificate, and commits to the revealed seeds; the Prover's signatures on its
   opening and both commitments verify, and the committed roots are the certificate's;
4. the values file reproduces both Merkle roots and the spot/MSE value digests;
5. ``--replay``: the report runs through the Verifier's state machine and the protocol's
   one message loop (the Prover answered from the transcript and the values file): E, C
   and M are re-derived from the revealed seeds, every message the Verifier sends must
   equal the logged one, and the decision must reproduce the signed verdict message;
6. ``--retrain K``: K spot checks are retrained locally and compared within tau.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from attribution.commitments import Transcript, vector_root
from attribution.commitments.errors import TranscriptError
from attribution.errors import UsageError, VattrError
from attribution.protocol import statements
from attribution.protocol.certificate import certificate_digest, changed_fields, values_digest
from attribution.protocol.common import TaskInfo, seed_commitment
from attribution.protocol.driver import StreamRejected, decide
from attribution.protocol.messages import (
    AttributionCommitment,
    ChallengeReveal,
    EvaluationCommitment,
    MessageError,
    OpenSession,
    SessionOpened,
    VerdictMessage,
    decode,
)
from attribution.protocol.params import ProtocolParams
from attribution.protocol.verifier import Outcome, VerifierSecrets, VerifierSession

FloatArray = npt.NDArray[np.float64]
FORMAT = "vattr-report/1"
REPORT_KEYS = {
    "format",
    "verdict",
    "reason",
    "task",
    "certificate",
    "field_hashes",
    "verdict_message",
    "transcript_jsonl",
    "values_file",
    "prover",
}


def values_path(report_path: Path) -> Path:
    return report_path.with_name(report_path.stem + ".values.npz")


def build_report(
    outcome: Outcome,
    session: VerifierSession,
    task_name: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON part of a report (values go to the ``.values.npz`` file)."""
    if task_name != outcome.certificate["task"]["name"]:
        raise ValueError(
            f"task {task_name!r} is not the certified task {outcome.certificate['task']['name']!r}"
        )
    transcript = session.transcript
    return {
        "format": FORMAT,
        "verdict": outcome.verdict,
        "reason": outcome.reason,
        "task": dict(outcome.certificate["task"]),
        "certificate": outcome.certificate,
        "field_hashes": outcome.field_hashes,
        "verdict_message": outcome.message.to_bytes().decode(),
        "transcript_jsonl": transcript.to_jsonl() if transcript is not None else "",
        **(extra or {}),
    }


def write_report(path: Path, report: dict[str, Any], values: dict[str, FloatArray | None]) -> Path:
    """Write ``path`` and its values file atomically; returns the values file's path."""
    vpath = values_path(path)
    report = {**report, "values_file": vpath.name}
    buf = io.BytesIO()
    arrays: dict[str, Any] = {
        k: (np.zeros(0) if v is None else np.asarray(v, dtype=np.float64))
        for k, v in values.items()
    }
    np.savez(
        buf,
        **arrays,
    )
    for target, data in (
        (vpath, buf.getvalue()),
        (path, json.dumps(report, indent=1, sort_keys=True).encode()),
    ):
        tmp = target.with_name(target.name + ".tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    return vpath


def write_audit_report(
    path: Path, result: Any, task_name: str, extra: dict[str, Any] | None = None
) -> Path:
    """Build and write the report of a :class:`verifier.client.AuditResult` (JSON plus
    the values file); returns ``path``."""
    s = result.session
    values: dict[str, FloatArray | None] = {
        "attribution": s.attribution,
        "evaluations": s.evaluations,
        "spot": result.spot_values,
        "mse": result.mse_values,
    }
    write_report(path, build_report(result.outcome, s, task_name, extra), values)
    return path


@dataclass
class CheckResult:
    ok: bool = True
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # what was checked, for callers that go on to use it (read once, not reloaded)
    report: dict[str, Any] = field(default_factory=dict, repr=False)
    values: dict[str, FloatArray] = field(default_factory=dict, repr=False)

    def fail(self, field_name: str, why: str) -> None:
        self.ok = False
        self.problems.append(f"{field_name}: {why}")


def load_report(path: Path) -> tuple[dict[str, Any], dict[str, FloatArray]]:
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read report {path}: {exc}") from exc
    if not isinstance(report, dict) or report.get("format") != FORMAT:
        raise UsageError(f"{path} is not a {FORMAT} report")
    name = str(report.get("values_file") or values_path(path).name)
    values: dict[str, FloatArray] = {}
    if not name or Path(name).name != name:
        report.setdefault("_load_errors", []).append(
            f"values file name {name!r} is not a plain file name"
        )
        return report, values
    vpath = path.with_name(name)
    try:
        with np.load(vpath, allow_pickle=False) as z:
            values = {k: np.asarray(z[k], dtype=np.float64) for k in z.files}
    except Exception as exc:
        # a damaged archive raises many types: BadZipFile (CRC, header), EOFError,
        # ValueError (array header), KeyError, NotImplementedError (compression method),
        # zlib.error, struct.error, ...
        values = {}
        report.setdefault("_load_errors", []).append(f"values file {vpath.name}: {exc}")
    return report, values


def check_report(path: Path, replay: bool = False, retrain: int = 0) -> CheckResult:
    """Verify a report (see the module docstring); never raises on bad content."""
    res = CheckResult()
    if not path.is_file():
        raise UsageError(f"no such report: {path}")
    try:
        report, values = load_report(path)
    except UsageError as exc:
        res.fail("report", str(exc))
        return res
    load_errors = report.pop("_load_errors", [])
    res.report, res.values = report, values
    for err in load_errors:
        res.fail("values_file", err)
    unknown = set(report) - REPORT_KEYS
    if unknown:
        res.fail("report", f"unknown top-level field(s): {', '.join(sorted(unknown))}")
    cert = report.get("certificate")
    hashes = report.get("field_hashes")
    if not isinstance(cert, dict) or not isinstance(hashes, dict):
        res.fail("certificate", "missing")
        return res
    for p in changed_fields(cert, hashes):
        res.fail(f"certificate.{p}", "does not match its signed hash")
    try:
        vmsg = decode(str(report.get("verdict_message", "")).encode(), VerdictMessage)
    except MessageError as exc:
        res.fail("verdict_message", str(exc))
        return res
    if certificate_digest(hashes) != vmsg.certificate_digest:
        res.fail("field_hashes", "do not match the signed certificate digest")
    try:
        vkey = bytes.fromhex(str(cert.get("verifier_key", "")))
        session_id = bytes.fromhex(str(cert.get("session_id", "")))
        head = bytes.fromhex(str(cert.get("transcript_head", "")))
    except ValueError:
        res.fail("certificate", "keys, session id or head are not hex")
        return res
    if not statements.verify(
        vkey,
        vmsg.signature,
        statements.verdict(session_id, head, vmsg.verdict, vmsg.reason, vmsg.certificate_digest),
    ):
        res.fail("verdict_message.signature", "the Verifier's signature does not verify")
    for name, value in (("verdict", vmsg.verdict), ("reason", vmsg.reason)):
        if report.get(name) != value or cert.get(name) != value:
            res.fail(name, f"differs from the signed verdict message ({value!r})")
    _check_transcript(report, cert, vmsg, head, res)
    _check_task(report, cert, res)
    if not load_errors:
        _check_values(cert, values, res)
    if res.ok and (replay or retrain):
        try:
            _replay(report, cert, values, vmsg, res, retrain)
        except (ValueError, KeyError, TypeError, VattrError, ReplayMismatch) as exc:
            res.fail("replay", f"{type(exc).__name__}: {exc}")
    return res


def _check_task(report: dict[str, Any], cert: dict[str, Any], res: CheckResult) -> None:
    """The unsigned top-level ``task`` block must repeat the signed one."""
    if report.get("task") != cert.get("task"):
        res.fail("task", "differs from the signed certificate.task")


def _root_hex(v: FloatArray | None) -> str | None:
    if v is None or v.size == 0:
        return None
    try:
        return vector_root(v.ravel()).hex()
    except ValueError:  # non-finite values have no canonical bytes
        return None


def _transcript(report: dict[str, Any], head: bytes, res: CheckResult) -> Transcript | None:
    try:
        t = Transcript.from_jsonl(str(report.get("transcript_jsonl", "")))
    except (TranscriptError, ValueError, KeyError) as exc:
        res.fail("transcript_jsonl", f"broken chain: {exc}")
        return None
    if t.to_jsonl() != str(report.get("transcript_jsonl", "")):
        res.fail("transcript_jsonl", "not in canonical form")
        return None
    entries = t.entries
    if len(entries) < 2 or entries[-2].head != head:
        res.fail("transcript_jsonl", "does not reach the signed transcript head")
        return None
    return t


def _check_transcript(
    report: dict[str, Any],
    cert: dict[str, Any],
    vmsg: VerdictMessage,
    head: bytes,
    res: CheckResult,
) -> None:
    t = _transcript(report, head, res)
    if t is None:
        return
    entries = t.entries
    if entries[-1].label != "verdict" or entries[-1].msg != vmsg.to_bytes():
        res.fail("transcript_jsonl", "the last entry is not the signed verdict message")
    by_label = {e.label: e for e in entries}
    # the head before entry i (the genesis h_0 before the first entry)
    heads = {0: t.genesis, **{e.index: e.head for e in entries}}
    try:
        open_msg = decode(by_label["open"].msg, OpenSession)
        opened = decode(by_label["opened"].msg, SessionOpened)
        commit_a = decode(by_label["commit_attribution"].msg, AttributionCommitment)
    except (KeyError, MessageError) as exc:
        res.fail("transcript_jsonl", f"missing or malformed protocol message: {exc}")
        return
    if open_msg.task_digest.hex() != cert.get("task_digest"):
        res.fail("certificate.task_digest", "differs from the open message")
    if open_msg.params != opened_params(cert):
        res.fail("certificate.params", "differ from the open message")
    _check_sizing(open_msg, by_label, cert, res)
    if open_msg.verifier_key.hex() != cert.get("verifier_key"):
        res.fail("certificate.verifier_key", "differs from the open message")
    seeds = cert.get("seeds", {})
    try:
        for label, seed, salt, com in (
            ("E", "seed_e", "salt_e", open_msg.commit_e),
            ("C", "seed_c", "salt_c", open_msg.commit_c),
            ("M", "seed_m", "salt_m", open_msg.commit_m),
        ):
            if (
                seed_commitment(label, bytes.fromhex(seeds[seed]), bytes.fromhex(seeds[salt]))
                != com
            ):
                res.fail(f"certificate.seeds.{seed}", "does not match the commitment at open")
    except (KeyError, ValueError):
        res.fail("certificate.seeds", "missing or not hex")
    if (vmsg.seed_c.hex(), vmsg.seed_m.hex()) != (seeds.get("seed_c"), seeds.get("seed_m")):
        res.fail("verdict_message", "revealed seeds differ from the certificate's")
    pkey = opened.prover_key
    if pkey.hex() != cert.get("prover_key"):
        res.fail("certificate.prover_key", "differs from the Prover's opening")
    e_open = by_label["opened"]
    if not statements.verify(
        pkey,
        opened.signature,
        statements.opened(opened.session_id, opened.nonce, heads[e_open.index - 1]),
    ):
        res.fail("transcript_jsonl.opened", "the Prover's signature does not verify")
    e_a = by_label["commit_attribution"]
    if not statements.verify(
        pkey,
        commit_a.signature,
        statements.commit_attribution(
            opened.session_id, commit_a.root, commit_a.rows, commit_a.cols, heads[e_a.index - 1]
        ),
    ):
        res.fail("transcript_jsonl.commit_attribution", "the Prover's signature does not verify")
    if commit_a.root.hex() != cert.get("attribution_root"):
        res.fail("certificate.attribution_root", "differs from the Prover's commitment")
    if "commit_evaluations" in by_label:
        e_f = by_label["commit_evaluations"]
        try:
            commit_f = decode(e_f.msg, EvaluationCommitment)
        except MessageError as exc:
            res.fail("transcript_jsonl.commit_evaluations", str(exc))
            return
        if not statements.verify(
            pkey,
            commit_f.signature,
            statements.commit_evaluations(
                opened.session_id,
                commit_f.root,
                commit_f.rows,
                commit_f.cols,
                heads[e_f.index - 1],
            ),
        ):
            res.fail(
                "transcript_jsonl.commit_evaluations", "the Prover's signature does not verify"
            )
        if commit_f.root.hex() != cert.get("evaluations_root"):
            res.fail("certificate.evaluations_root", "differs from the Prover's commitment")


def _check_sizing(
    open_msg: OpenSession, by_label: dict[str, Any], cert: dict[str, Any], res: CheckResult
) -> None:
    """The certified parameters are the opened ones, sized by the revealed challenge's
    sizes when the session was pilot-planned (docs/protocol.md section 6.14)."""
    if "reveal_challenge" not in by_label:
        if open_msg.params != cert.get("params"):
            res.fail("certificate.params", "differ from the open message (nothing was revealed)")
        return
    try:
        reveal = decode(by_label["reveal_challenge"].msg, ChallengeReveal)
    except MessageError as exc:
        res.fail("transcript_jsonl.reveal_challenge", str(exc))
        return
    try:
        opened = ProtocolParams.from_dict(open_msg.params)
        sized = opened.sized(reveal.plan) if reveal.plan is not None else opened
    except UsageError as exc:
        res.fail("transcript_jsonl.reveal_challenge", f"sizes do not apply: {exc}")
        return
    if sized.to_dict() != cert.get("params"):
        res.fail("certificate.params", "differ from the opened parameters and revealed sizes")


STREAM_REJECTIONS = ("commitment_mismatch", "malformed")


def _stream_rejected(cert: dict[str, Any]) -> bool:
    """A REJECT fixed by a Prover stream that failed its checks: the Verifier keeps no
    values it did not accept, so the report has none to check for that stream."""
    return cert.get("verdict") == "REJECT" and cert.get("reason") in STREAM_REJECTIONS


def _check_values(cert: dict[str, Any], values: dict[str, FloatArray], res: CheckResult) -> None:
    for name, root_key, what in (
        ("attribution", "attribution_root", "attribution"),
        ("evaluations", "evaluations_root", "f-value"),
    ):
        if name == "evaluations" and not cert.get(root_key):
            continue  # non-interactive and naive runs have no Prover f-values
        v = values.get(name)
        if _stream_rejected(cert) and (v is None or v.size == 0):
            res.notes.append(f"values.{name}: none kept (the Prover's stream was rejected)")
            continue
        if _root_hex(v) != cert.get(root_key):
            res.fail(f"values.{name}", f"does not reproduce the committed {what} root")
    for name, key in (("spot", "spot_values_sha256"), ("mse", "mse_values_sha256")):
        v = values.get(name)
        recorded = cert.get(key)
        got = "none" if v is None or (v.size == 0 and recorded == "none") else values_digest(v)
        if got != recorded:
            res.fail(f"values.{name}", f"digest {got} != certificate {recorded}")


class _RecordedKey:
    """The Verifier's public key with its recorded verdict signature: a replay cannot
    sign anything new, it can only reproduce the signed verdict message byte for byte."""

    def __init__(self, public_key_raw: bytes, signature: bytes) -> None:
        self._public = public_key_raw
        self._signature = signature

    @property
    def public_key_raw(self) -> bytes:
        return self._public

    def sign(self, tag: str, *fields: bytes) -> bytes:
        return self._signature


class ReplayMismatch(Exception):
    """The replayed Verifier sent a message other than the one in the transcript."""


class _ReplayProver:
    """A :class:`~attribution.protocol.driver.ProverPort` that answers from a report:
    the Prover's messages from the transcript, its vectors from the values file; every
    message the replayed Verifier sends must equal the logged one."""

    def __init__(
        self, logged: dict[str, bytes], values: dict[str, FloatArray], cert: dict[str, Any]
    ) -> None:
        self.logged = logged
        self.values = values
        self.cert = cert

    def _expect(self, label: str, body: bytes) -> None:
        if self.logged.get(label) != body:
            raise ReplayMismatch(f"the replayed Verifier's {label} message differs from the log")

    def open_session(self, body: bytes) -> bytes:
        self._expect("open", body)
        return self.logged["opened"]

    def commit_attribution(self) -> bytes:
        return self.logged["commit_attribution"]

    def reveal_challenge(self, body: bytes) -> str:
        self._expect("reveal_challenge", body)
        return "replay"

    def wait_trained(self, job: str, total: int) -> None:
        return None

    def commit_evaluations(self) -> bytes:
        return self.logged["commit_evaluations"]

    def _stream(self, name: str, expected: int) -> FloatArray:
        v = self.values.get(name)
        if _stream_rejected(self.cert) and (v is None or v.size == 0):
            # the Verifier kept nothing of a rejected stream: reproduce its rejection (a
            # vector that misses its root, or the framing error as recorded)
            if self.cert.get("reason") == "commitment_mismatch":
                return np.zeros(expected)
            detail = str(self.cert.get("detail", ""))
            raise StreamRejected(detail.split(": ", 1)[-1])
        return np.asarray(v, dtype=np.float64)

    def stream_attribution(self, expected: int) -> FloatArray:
        return self._stream("attribution", expected)

    def stream_evaluations(self, expected: int) -> FloatArray:
        return self._stream("evaluations", expected)

    def deliver_verdict(self, body: bytes) -> None:
        return None  # a replay decides only (driver.decide); nothing is delivered


def opened_params(cert: dict[str, Any]) -> Any:
    """The parameters sent at open: the certificate's own, or for a pilot-planned session
    (docs/protocol.md section 6.14) those recorded under ``planning`` before the pilot
    fixed the sizes."""
    planning = cert.get("planning")
    if isinstance(planning, dict) and "opened_params" in planning:
        return planning["opened_params"]
    return cert.get("params")


def replay_session(report: dict[str, Any], cert: dict[str, Any]) -> VerifierSession:
    """A fresh Verifier state machine for a report: the certified task constants and
    parameters, the revealed seeds, the Verifier's public key (raises KeyError,
    ValueError or TypeError on a report that lacks them)."""
    t = cert["task"]
    info = TaskInfo(
        int(t["n_points"]), int(t["n_outputs"]), float(t["bound"]), float(t["tau"]), float(t["p"])
    )
    secrets = VerifierSecrets(**{k: bytes.fromhex(v) for k, v in cert["seeds"].items()})
    vmsg = decode(str(report["verdict_message"]).encode(), VerdictMessage)
    return VerifierSession(
        info,
        bytes.fromhex(cert["task_digest"]),
        ProtocolParams.from_dict(opened_params(cert)),
        _RecordedKey(bytes.fromhex(cert["verifier_key"]), vmsg.signature),
        secrets,
        task_name=str(t["name"]),
    )


def certified_session(report: dict[str, Any], cert: dict[str, Any]) -> VerifierSession:
    """:func:`replay_session` with the certified sizes (those a pilot fixed, docs/protocol.md
    section 6.14), to re-derive E and C offline without replaying the decision."""
    session = replay_session(report, cert)
    sized = ProtocolParams.from_dict(cert["params"])
    if sized != session.params:
        try:
            session.adopt_sizes(sized)
        except VattrError as exc:
            raise ValueError(str(exc)) from exc
    return session


def _replay(
    report: dict[str, Any],
    cert: dict[str, Any],
    values: dict[str, FloatArray],
    vmsg: VerdictMessage,
    res: CheckResult,
    retrain: int,
) -> None:
    """Run the report through the Verifier's state machine and the protocol's one message
    loop (:func:`attribution.protocol.driver.decide`), the Prover's side answered
    from the transcript and the values file, the local trainings from the recorded spot
    and MSE values. Bit-identical when the signed verdict message comes out byte for
    byte; otherwise every certified statistic is compared within 1e-9."""
    from attribution.tasks import load_task, resolve_spec

    session = replay_session(report, cert)
    info = session.task
    entries = Transcript.from_jsonl(report["transcript_jsonl"]).entries
    logged = {e.label: e.msg for e in entries}
    port = _ReplayProver(logged, values, cert)
    recorded = {"spot": values.get("spot"), "mse": values.get("mse")}

    def train(plan: Any, rows: Sequence[int], label: str) -> FloatArray:
        v = recorded[label]
        if v is None or v.size != len(rows) * info.n_outputs:
            raise ValueError(f"values.{label}: {0 if v is None else v.size} values recorded")
        return v.reshape(len(rows), info.n_outputs)

    outcome = decide(session, port, train).outcome
    res.notes.append(f"replayed: {outcome.verdict} {outcome.reason}".strip())
    if (outcome.verdict, outcome.reason) != (vmsg.verdict, vmsg.reason):
        res.fail(
            "verdict",
            f"replay gives {outcome.verdict} {outcome.reason}, report says "
            f"{vmsg.verdict} {vmsg.reason}",
        )
    if outcome.message.to_bytes() == vmsg.to_bytes():
        res.notes.append("replay: the signed verdict message is reproduced byte for byte")
    else:
        for i, (got, rec) in enumerate(
            zip(outcome.certificate["outputs"], cert.get("outputs", []), strict=False)
        ):
            for k, v in got.items():
                r = rec.get(k)
                if isinstance(v, float) and isinstance(r, float):
                    if not math.isclose(v, r, rel_tol=1e-9, abs_tol=1e-12):
                        res.fail(
                            f"certificate.outputs.{i}.{k}", f"replay gives {v!r}, report {r!r}"
                        )
                elif v != r and k != "budget_to_decide":
                    res.fail(f"certificate.outputs.{i}.{k}", f"replay gives {v!r}, report {r!r}")
        if res.ok:
            res.notes.append("replay: every statistic agrees within 1e-9 (not bit for bit)")
    if retrain:
        task = load_task(resolve_spec(cert["task"]["name"]))
        if task.digest.hex() != cert["task_digest"]:
            res.fail("task", "the local task's digest differs from the report's")
            return
        rows = session.spot_check_rows()[:retrain]
        if session.evaluations is None:
            res.notes.append("no Prover f-values to retrain against (non-interactive run)")
            return
        plan = session.challenge_plan()
        local = task.train_batch(plan.masks(rows), plan.seeds(rows))
        diff = float(np.max(np.abs(local - session.evaluations[rows]))) if rows else 0.0
        res.notes.append(f"retrained {len(rows)} spot checks: max |diff| {diff:.3g}")
        if diff > info.tau or (info.tau == 0 and diff != 0):
            res.fail("values.evaluations", f"retrained spot checks differ by {diff:.3g}")

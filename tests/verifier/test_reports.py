"""Signed audit reports (verifier/report.py) checked offline, and ``vattr check``/``keygen``.

One ACCEPT and one REJECT report come from real loopback audits of the synthetic task
(module fixture, about a second); every test works on its own copy. The tests edit one
thing at a time -- a certificate leaf, the hash map, the signature, a transcript byte, a
value in the values file, any byte of the JSON -- and require ``check_report`` to fail
and to name the edited field, without ever raising on bad content.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from attribution.commitments import SigningKey
from attribution.errors import UsageError
from attribution.execution import SerialExecutor
from attribution.keyfiles import load_private_key
from attribution.protocol.certificate import certificate_digest, field_hashes
from attribution.protocol.common import task_info
from attribution.protocol.messages import VerdictMessage, decode
from attribution.protocol.planner import plan_run
from attribution.tasks import load_task, resolve_spec
from attribution.tasks.runtime import OracleTask
from prover.server import start_server
from vattr.cli import main
from vattr.redteam.provers import red_team_prover
from verifier.audit import run_audit
from verifier.client import ProverClient
from verifier.reports.report import check_report, values_path, write_audit_report

DELTA = 0.05
# kind: (strategy, epsilon, expected verdict). Measured with `vattr simulate` (200 runs
# each): honest at eps = 0.2 is ACCEPT 200/200 (|E| = 1140); the negated attribution
# scale:-1 at eps = 0.1 is REJECT (mse_gap, so the certificate has output statistics)
# 200/200 (|E| = 6720). scale:0 / scale:0.5 are mostly INCONCLUSIVE at these budgets.
KINDS = {"accept": ("honest", 0.2, "ACCEPT"), "reject": ("scale:-1", 0.1, "REJECT")}


# -- fixtures -----------------------------------------------------------------------------
def _audit(out: Path, name: str, strategy: str, epsilon: float) -> Path:
    out.mkdir(parents=True)
    task = load_task(resolve_spec("synthetic"))
    assert isinstance(task, OracleTask)
    served, factory = red_team_prover(task, "exact", None, strategy)
    running = start_server(
        served,
        SigningKey.generate(),
        SerialExecutor(),
        out / f"{name}-store",
        servicer_factory=factory,
    )
    try:
        plan = plan_run(task_info(task), epsilon, DELTA, hint=task.oracle.exact().B_ge2)
        with ProverClient(f"127.0.0.1:{running.port}") as client:
            client.wait_ready()
            res = run_audit(
                client,
                task,
                plan,
                SigningKey.generate(),
                out / f"{name}-verifier",
                executor="serial",
                quiet=True,
            )
    finally:
        running.stop(0)
    path = write_audit_report(out / f"{name}.json", res, task.spec.name)
    return path


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("reports")
    paths = {}
    for kind, (strategy, epsilon, verdict) in KINDS.items():
        for attempt in range(3):  # fresh randomness each time; see KINDS for the odds
            paths[kind] = _audit(out / f"{kind}-{attempt}", kind, strategy, epsilon)
            got = json.loads(paths[kind].read_text())["verdict"]
            if got == verdict:
                break
        assert got == verdict, f"{kind}: {got} in 3 audits"
    return paths


def _copy(src: Path, dst_dir: Path) -> Path:
    shutil.copyfile(src, dst_dir / src.name)
    shutil.copyfile(values_path(src), dst_dir / values_path(src).name)
    return dst_dir / src.name


@pytest.fixture(params=sorted(KINDS))
def report(request: pytest.FixtureRequest, originals: dict[str, Path], tmp_path: Path) -> Path:
    """A private copy of the ACCEPT or the REJECT report (and its values file)."""
    return _copy(originals[request.param], tmp_path)


@pytest.fixture
def accept_report(originals: dict[str, Path], tmp_path: Path) -> Path:
    return _copy(originals["accept"], tmp_path)


# -- helpers ------------------------------------------------------------------------------
def _load(path: Path) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return obj


def _save(path: Path, obj: dict[str, Any]) -> None:
    # the layout of write_report, so that only the edited value differs
    path.write_text(json.dumps(obj, indent=1, sort_keys=True), encoding="utf-8")


def _names(problems: list[str]) -> list[str]:
    return [p.split(": ", 1)[0] for p in problems]


def _named(field: str, problems: list[str]) -> bool:
    """Some problem names ``field`` itself or one of its sub-fields."""
    return any(n == field or n.startswith(field + ".") for n in _names(problems))


def _flip_hex(text: str, i: int = 10) -> str:
    c = text[i]
    return text[:i] + ("0" if c != "0" else "1") + text[i + 1 :]


def _other_verdict(v: str) -> str:
    return "REJECT" if v == "ACCEPT" else "ACCEPT"


def _run_check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["check", *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


# -- untouched reports --------------------------------------------------------------------
def test_untouched_report_passes(report: Path, capsys: pytest.CaptureFixture[str]) -> None:
    res = check_report(report)
    assert res.ok, res.problems
    assert res.problems == []
    code, out = _run_check(capsys, str(report))
    assert code == 0
    assert "OK" in out


def test_untouched_report_replays(report: Path) -> None:
    res = check_report(report, replay=True)
    assert res.ok, res.problems
    verdict = _load(report)["verdict"]
    assert any(n.startswith(f"replayed: {verdict}") for n in res.notes), res.notes


def test_untouched_report_retrains(report: Path) -> None:
    res = check_report(report, retrain=5)
    assert res.ok, res.problems
    assert any(n.startswith("retrained 5 spot checks") for n in res.notes), res.notes


# -- tampering with one JSON leaf ---------------------------------------------------------
def _set_leaf(dotted: str, change: Callable[[Any], Any]) -> Callable[[dict[str, Any]], None]:
    def edit(obj: dict[str, Any]) -> None:
        *parents, last = dotted.split(".")
        node: Any = obj
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        old = node[int(last)] if isinstance(node, list) else node[last]
        new = change(old)
        assert new != old
        if isinstance(node, list):
            node[int(last)] = new
        else:
            node[last] = new

    return edit


def _edit_field_hash(obj: dict[str, Any]) -> None:
    obj["field_hashes"]["outputs.0.statistic"] = hashlib.sha256(b"0.0").hexdigest()


def _edit_signature(obj: dict[str, Any]) -> None:
    msg = obj["verdict_message"]
    sig = re.search(r'"signature":"([0-9a-f]{128})"', msg)
    assert sig is not None
    obj["verdict_message"] = msg.replace(sig.group(1), _flip_hex(sig.group(1), 20))


def _edit_transcript_byte(obj: dict[str, Any]) -> None:
    lines = obj["transcript_jsonl"].split("\n")
    line = lines[2]  # the Prover's "opened" entry
    i = line.index('"msg":"') + 7 + 40  # a base64 character well inside the message
    repl = "B" if line[i] != "B" else "C"
    lines[2] = line[:i] + repl + line[i + 1 :]
    obj["transcript_jsonl"] = "\n".join(lines)


TAMPER: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "statistic": (
        _set_leaf("certificate.outputs.0.statistic", lambda v: v + 1e-3),
        "certificate.outputs.0.statistic",
    ),
    "upper_bound": (
        _set_leaf("certificate.outputs.0.upper_bound", lambda v: v - 0.1),
        "certificate.outputs.0.upper_bound",
    ),
    "epsilon": (
        _set_leaf("certificate.params.epsilon", lambda v: v * 2),
        "certificate.params.epsilon",
    ),
    "k": (_set_leaf("certificate.params.k", lambda v: v - 1), "certificate.params.k"),
    "sizes.E": (_set_leaf("certificate.sizes.E", lambda v: v + 1), "certificate.sizes.E"),
    "seed_c": (_set_leaf("certificate.seeds.seed_c", _flip_hex), "certificate.seeds.seed_c"),
    "attribution_root": (
        _set_leaf("certificate.attribution_root", _flip_hex),
        "certificate.attribution_root",
    ),
    "certificate.verdict": (
        _set_leaf("certificate.verdict", _other_verdict),
        "certificate.verdict",
    ),
    "verdict": (_set_leaf("verdict", _other_verdict), "verdict"),
    "field_hashes": (_edit_field_hash, "field_hashes"),
    "signature": (_edit_signature, "verdict_message.signature"),
    "transcript": (_edit_transcript_byte, "transcript_jsonl"),
}


@pytest.mark.parametrize("what", sorted(TAMPER))
def test_tampered_leaf_is_named(
    report: Path, what: str, capsys: pytest.CaptureFixture[str]
) -> None:
    edit, field = TAMPER[what]
    obj = _load(report)
    edit(obj)
    _save(report, obj)
    res = check_report(report)
    assert not res.ok
    assert _named(field, res.problems), res.problems
    code, out = _run_check(capsys, str(report))
    assert code == 1
    assert f"FAIL {field}" in out
    assert "Traceback" not in out


# -- the values file ----------------------------------------------------------------------
def _edit_values(path: Path, change: Callable[[dict[str, np.ndarray]], None]) -> None:
    vpath = values_path(path)
    with np.load(vpath) as z:
        arrays: dict[str, Any] = {k: np.array(z[k]) for k in z.files}
    change(arrays)
    with open(vpath, "wb") as fh:
        np.savez(fh, **arrays)


@pytest.mark.parametrize("name", ["attribution", "evaluations", "spot"])
def test_changed_value_is_named(
    report: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    def change(arrays: dict[str, np.ndarray]) -> None:
        arrays[name].flat[3] += 1e-6

    _edit_values(report, change)
    res = check_report(report)
    assert not res.ok
    assert _named(f"values.{name}", res.problems), res.problems
    code, out = _run_check(capsys, str(report))
    assert code == 1
    assert f"FAIL values.{name}" in out


def test_missing_values_file_fails_cleanly(
    report: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    values_path(report).unlink()
    for replay, retrain in ((False, 0), (True, 0), (False, 2)):
        res = check_report(report, replay=replay, retrain=retrain)
        assert not res.ok
        assert _named("values_file", res.problems), res.problems
    code, out = _run_check(capsys, str(report))
    assert code == 1
    assert "FAIL values_file" in out
    assert "Traceback" not in out


def test_emptied_values_file_fails(report: Path) -> None:
    with open(values_path(report), "wb") as fh:
        np.savez(fh)
    res = check_report(report)
    assert not res.ok
    assert _named("values.attribution", res.problems), res.problems


@pytest.mark.parametrize("name", ["attribution", "evaluations"])
def test_non_finite_value_fails_cleanly(accept_report: Path, name: str) -> None:
    def change(arrays: dict[str, np.ndarray]) -> None:
        arrays[name].flat[3] = np.nan

    _edit_values(accept_report, change)
    res = check_report(accept_report)
    assert not res.ok
    assert _named(f"values.{name}", res.problems), res.problems


def test_values_file_name_with_separator_fails_cleanly(accept_report: Path) -> None:
    obj = _load(accept_report)
    obj["values_file"] = obj["values_file"].replace(".", "/", 1)
    _save(accept_report, obj)
    res = check_report(accept_report)
    assert not res.ok
    assert _named("values_file", res.problems), res.problems


# -- any byte ------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_byte_flips_never_pass(originals: dict[str, Path], tmp_path: Path, kind: str) -> None:
    """One bit of one byte flipped at 300 positions spread over the whole JSON text (fixed
    seed). check_report must never return ok=True for a semantically changed file and
    never raise anything but UsageError (a file that is no longer UTF-8 JSON, or not a
    report at all: the CLI's exit 2, see test_unreadable_report_*)."""
    path = _copy(originals[kind], tmp_path)
    data = path.read_bytes()
    text = data.decode()
    assert len(text) == len(data)  # ASCII: byte positions are character positions
    original = json.loads(data)
    rng = np.random.default_rng(20240611)
    stride = len(data) / 300
    positions = sorted(
        {min(len(data) - 1, int(i * stride + rng.uniform(0, stride))) for i in range(300)}
    )
    assert len(positions) >= 290
    passed, raised, outcomes = [], [], {"failed": 0, "same": 0}
    for pos in positions:
        buf = bytearray(data)
        buf[pos] ^= 1 << int(rng.integers(0, 8))
        path.write_bytes(bytes(buf))
        try:
            same = json.loads(bytes(buf)) == original
        except ValueError:  # not UTF-8 or not JSON (UnicodeDecodeError is a ValueError)
            same = False
        if same:  # e.g. the 17th digit of a float that parses to the same double
            outcomes["same"] += 1
            continue
        try:
            res = check_report(path)
        except Exception as exc:
            raised.append((pos, repr(exc)))
            continue
        if not res.ok:
            outcomes["failed"] += 1
        else:
            passed.append((pos, text[max(0, pos - 30) : pos + 10]))
    assert not raised, raised
    assert not passed, passed
    assert outcomes["failed"] > 100, outcomes


GARBAGE = [b"\xff\xfe{", b'{"format": "vattr-report/1"']


@pytest.mark.parametrize("garbage", GARBAGE, ids=["not-utf8", "truncated-json"])
def test_unreadable_report_cli_exits_cleanly(
    accept_report: Path, garbage: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    accept_report.write_bytes(garbage)
    code, out = _run_check(capsys, str(accept_report))
    assert code in (1, 2)
    assert "Traceback" not in out
    assert "cannot read report" in out or "FAIL" in out


@pytest.mark.parametrize("garbage", GARBAGE, ids=["not-utf8", "truncated-json"])
def test_unreadable_report_is_a_failure(accept_report: Path, garbage: bytes) -> None:
    accept_report.write_bytes(garbage)
    res = check_report(accept_report)
    assert not res.ok


@pytest.mark.parametrize(
    ("dotted", "change", "replay"),
    [
        pytest.param("task.tau", lambda v: 0.5, False, id="tau"),
        pytest.param("task.bound", lambda v: v * 10, False, id="bound"),
        pytest.param("task.bound", lambda v: v * 10, True, id="bound-replay"),  # passes too
        pytest.param("task.n_points", lambda v: v + 1, False, id="n_points"),
        pytest.param("task.n_points", lambda v: v + 1, True, id="n_points-replay"),  # raises
        pytest.param("task.name", lambda v: "breast_cancer-logreg", False, id="name"),
    ],
)
def test_edited_task_block_fails(
    accept_report: Path, dotted: str, change: Callable[[Any], Any], replay: bool
) -> None:
    obj = _load(accept_report)
    _set_leaf(dotted, change)(obj)
    _save(accept_report, obj)
    res = check_report(accept_report, replay=replay)
    assert not res.ok
    assert _named("task", res.problems), res.problems


def test_non_canonical_transcript_fails(accept_report: Path) -> None:
    obj = _load(accept_report)
    log = obj["transcript_jsonl"]
    head = re.search(r'"head":"([0-9a-f]{64})"', log)
    assert head is not None
    assert head.group(1) != head.group(1).upper()
    obj["transcript_jsonl"] = log.replace(head.group(1), head.group(1).upper())
    _save(accept_report, obj)
    res = check_report(accept_report)
    assert not res.ok
    assert _named("transcript_jsonl", res.problems), res.problems


# -- re-signing with another key ----------------------------------------------------------
def test_resigned_certificate_fails_on_verifier_key(accept_report: Path) -> None:
    """Changing a statistic *and* its field hash, the certificate digest and the verdict
    signature needs the Verifier's key; a forger's own key differs from the one the
    transcript's open message carries."""
    obj = _load(accept_report)
    cert = obj["certificate"]
    cert["outputs"][0]["statistic"] -= 0.05
    forger = SigningKey.generate()
    cert["verifier_key"] = forger.public_key_raw.hex()
    hashes = field_hashes(cert)
    digest = certificate_digest(hashes)
    old = decode(obj["verdict_message"].encode(), VerdictMessage)
    signature = forger.sign(
        "verdict",
        bytes.fromhex(cert["session_id"]),
        bytes.fromhex(cert["transcript_head"]),
        old.verdict.encode(),
        old.reason.encode(),
        digest,
    )
    msg = VerdictMessage(
        verdict=old.verdict,
        reason=old.reason,
        certificate_digest=digest,
        seed_c=old.seed_c,
        salt_c=old.salt_c,
        seed_m=old.seed_m,
        salt_m=old.salt_m,
        signature=signature,
    )
    obj["field_hashes"] = hashes
    obj["verdict_message"] = msg.to_bytes().decode()
    _save(accept_report, obj)
    res = check_report(accept_report)
    assert not res.ok
    names = _names(res.problems)
    # the forged hashes, digest and signature are self-consistent ...
    assert not any(n.startswith(("field_hashes", "verdict_message")) for n in names), names
    assert "certificate.outputs.0.statistic" not in names
    # ... but the key is not the one the Verifier opened the session with
    assert "certificate.verifier_key" in names, res.problems


# -- keygen ---------------------------------------------------------------------------------
@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("umask_022")
def test_keygen_writes_0600_and_loader_refuses_0644(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = tmp_path / "verifier.pem"
    assert main(["keygen", "--out", str(key_file)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert load_private_key(key_file).public_key_raw.hex() == info["public_key"]
    assert main(["keygen", "--out", str(key_file)]) == 2  # no silent overwrite
    loose = tmp_path / "loose.pem"
    shutil.copyfile(key_file, loose)
    loose.chmod(0o644)
    with pytest.raises(UsageError, match="0644"):
        load_private_key(loose)


def _arrays(data: bytes) -> dict[str, np.ndarray] | None:
    """The non-empty arrays of an .npz (an empty placeholder counts as absent), or None if
    the archive cannot be read."""
    import io

    try:
        with np.load(io.BytesIO(data)) as z:
            return {k: z[k] for k in z.files if z[k].size}
    except Exception:
        return None


def test_values_file_byte_flips_never_pass_or_raise(accept_report: Path) -> None:
    """One bit flipped at every 13th byte of the values file (zip headers, array headers,
    data, central directory): check_report never raises (it used to let BadZipFile and
    NotImplementedError out) and passes only when the arrays are unchanged.
    ``benchmarks/bench_tamper.py`` runs every byte of the report, values file and receipt."""
    vpath = values_path(accept_report)
    data = vpath.read_bytes()
    original = _arrays(data)
    assert original is not None
    failed = 0
    for pos in range(0, len(data), 13):
        buf = bytearray(data)
        buf[pos] ^= 1 << (pos % 8)
        vpath.write_bytes(bytes(buf))
        res = check_report(accept_report)  # must not raise
        got = _arrays(bytes(buf))
        same = got is not None and set(got) == set(original)
        same = same and all(np.array_equal(got[k], original[k], equal_nan=True) for k in got)
        if res.ok:
            assert same, (pos, data[max(0, pos - 8) : pos + 8])
        else:
            failed += 1
    assert failed > len(data) // 13 // 2


@pytest.mark.parametrize("label", ["opened", "commit_attribution", "commit_evaluations"])
def test_reordered_transcript_fails_cleanly(accept_report: Path, label: str) -> None:
    """A transcript rebuilt (valid chain, matching head) with a Prover message moved to the
    front: its signature covers the head before it, which does not exist; check_report
    reports that instead of raising KeyError (as it once did)."""
    from attribution.commitments import Transcript

    obj = _load(accept_report)
    t = Transcript.from_jsonl(obj["transcript_jsonl"])
    order = [e for e in t.entries if e.label == label]
    order += [e for e in t.entries if e.label != label]
    rebuilt = Transcript(t.session_id)
    for e in order:
        rebuilt.append(e.direction, e.label, e.msg)
    obj["transcript_jsonl"] = rebuilt.to_jsonl()
    obj["certificate"]["transcript_head"] = rebuilt.entries[-2].head.hex()
    _save(accept_report, obj)
    res = check_report(accept_report)
    assert not res.ok
    assert res.problems

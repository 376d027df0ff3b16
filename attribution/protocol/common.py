"""Definitions both protocol roles share: task constants, phases, errors, seed
commitments, session ids, the challenge plan constructor and affine predictions."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

import numpy as np
import numpy.typing as npt

from attribution.encoding import TAG_SEED_COMMIT, TAG_SESSION, domain_hash
from attribution.protocol.challenges import ChallengeLayout, ChallengePlan
from attribution.protocol.params import ProtocolParams
from attribution.subsets import prob_to_u32

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class TaskInfo:
    """What both parties know about the task: sizes, output bound b, tolerance tau, p."""

    n_points: int
    n_outputs: int
    bound: float
    tau: float
    p: float


class Signer(Protocol):
    """What a protocol role needs of its key: the raw 32-byte Ed25519 public key and
    domain-separated signatures (:class:`attribution.commitments.SigningKey`)."""

    @property
    def public_key_raw(self) -> bytes: ...

    def sign(self, tag: str, *fields: bytes) -> bytes: ...


class _Spec(Protocol):
    @property
    def p(self) -> float: ...


class LoadedTask(Protocol):
    """What :func:`task_info` reads of a loaded task (``attribution.tasks.runtime.Task``;
    typed structurally so that the protocol engine does not import the training code)."""

    @property
    def n_points(self) -> int: ...
    @property
    def n_outputs(self) -> int: ...
    @property
    def bound(self) -> float: ...
    @property
    def tau(self) -> float: ...
    @property
    def spec(self) -> _Spec: ...


def task_info(task: LoadedTask) -> TaskInfo:
    """The :class:`TaskInfo` of a loaded task."""
    return TaskInfo(task.n_points, task.n_outputs, task.bound, task.tau, task.spec.p)


class Phase(IntEnum):
    NEW = 0
    OPENED = 1
    SESSION = 2
    ATTRIBUTION = 3
    CHALLENGE = 4
    EVALUATIONS = 5
    DECIDED = 6


def u64be(*xs: int) -> bytes:
    """Unsigned 64-bit big-endian encodings of ``xs``, concatenated (signed shape fields)."""
    return b"".join(struct.pack(">Q", x) for x in xs)


def seed_commitment(label: str, seed: bytes, salt: bytes) -> bytes:
    """``SHA-256("attribution.v1/seed-commit" 0x00 label 0x00 seed salt)``."""
    return domain_hash(TAG_SEED_COMMIT, label.encode(), b"\x00", seed, salt)


def session_id_for(open_bytes: bytes) -> bytes:
    """Both sides derive the session id from the open message: 16 bytes of its hash."""
    return domain_hash(TAG_SESSION, open_bytes)[:16]


def make_challenge_plan(
    task: TaskInfo, params: ProtocolParams, layout: ChallengeLayout, seed_e: bytes, bind: bytes
) -> ChallengePlan:
    """E for these parameters (both roles call this after the reveal)."""
    rho = params.rho
    r32 = (prob_to_u32(rho, allow_one=True), prob_to_u32(min(1.0, 2 * rho), allow_one=True))
    return ChallengePlan(task.n_points, layout, prob_to_u32(task.p), r32, seed_e, bind)


def g_values(
    attribution_row: FloatArray, masks: npt.NDArray[np.bool_], chunk: int = 4096
) -> FloatArray:
    """``g(x) = a0 + sum_i a_i x_i`` with ``x = +1`` on the mask, ``-1`` off it.

    Computed as ``a0 - sum(a) + 2 * (mask @ a)`` in row chunks (bounded memory)."""
    a0, a = float(attribution_row[0]), np.asarray(attribution_row[1:], dtype=np.float64)
    out = np.empty(masks.shape[0], dtype=np.float64)
    base = a0 - float(a.sum())
    for i in range(0, masks.shape[0], chunk):
        out[i : i + chunk] = base + 2.0 * (masks[i : i + chunk].astype(np.float64) @ a)
    return out

"""Certificate hashing that can name the field someone edited.

The certificate (a JSON object) is flattened into leaves addressed by dotted paths
(``outputs.0.statistic``); each leaf is hashed on its own::

    field_hash(path) = SHA-256(canonical JSON of the leaf value)
    certificate_digest = SHA-256("attribution.v1/certificate" 0x00 || canonical JSON of
                                 {path: hex(field_hash)})

The Verifier signs ``certificate_digest`` (inside the verdict message). A checker that
recomputes the field hashes of an edited report finds exactly the paths whose values
changed; an edit of the hash map itself breaks the signed digest.
"""

from __future__ import annotations

import hashlib
from typing import Any

from attribution.encoding import TAG_CERTIFICATE, canonical_json, domain_hash


def canonical(value: Any) -> bytes:
    return canonical_json(value)


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Leaves of a JSON value by dotted path (empty containers are leaves)."""
    out: dict[str, Any] = {}
    if isinstance(obj, dict) and obj:
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(obj, list) and obj:
        for i, v in enumerate(obj):
            out.update(flatten(v, f"{prefix}{i}."))
    else:
        out[prefix[:-1]] = obj
    return out


def field_hashes(certificate: dict[str, Any]) -> dict[str, str]:
    return {
        path: hashlib.sha256(canonical(v)).hexdigest() for path, v in flatten(certificate).items()
    }


def certificate_digest(hashes: dict[str, str]) -> bytes:
    return domain_hash(TAG_CERTIFICATE, canonical(hashes))


def changed_fields(certificate: dict[str, Any], hashes: dict[str, str]) -> list[str]:
    """Paths whose value no longer matches the recorded hash (or that appeared/vanished)."""
    now = field_hashes(certificate)
    return sorted(p for p in set(now) | set(hashes) if now.get(p) != hashes.get(p))


def values_digest(values: Any) -> str:
    """``sha256:<hex>`` of float64 values as C-contiguous little-endian bytes (or 'none')."""
    if values is None:
        return "none"
    import numpy as np

    arr = np.ascontiguousarray(np.asarray(values, dtype="<f8"))
    return "sha256:" + hashlib.sha256(arr.tobytes()).hexdigest()

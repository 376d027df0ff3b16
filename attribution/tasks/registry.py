"""Built-in tasks and resolution of ``--task`` arguments.

``--task`` takes a built-in name (``vattr tasks`` lists them) or a path to a TOML spec.
``--set KEY=VALUE`` overrides one field before validation (``KEY`` is dotted, e.g.
``data.synthetic.n=10000``; ``VALUE`` is a TOML literal, bare words are strings).
An override changes the task digest like any other spec change.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from attribution.errors import UsageError
from attribution.tasks.spec import TaskSpec, spec_from_dict

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"


def builtin_names() -> list[str]:
    """Names of the built-in tasks, sorted."""
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.toml"))


def _read_toml(path: Path, origin: str) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read task spec {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{origin}: malformed TOML ({exc})") from exc


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with every ``KEY=VALUE`` override applied."""
    import copy

    out = copy.deepcopy(raw)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set expects KEY=VALUE, got {item!r}")
        parts = key.split(".")
        node = out
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise UsageError(f"--set {key}: {part!r} is not a table")
            node = child
        node[parts[-1]] = _parse_value(value)
    return out


def resolve_spec(task: str, overrides: Sequence[str] = (), p: float | None = None) -> TaskSpec:
    """A built-in name or a spec path, with overrides and an optional new ``p``."""
    path = Path(task)
    if task in builtin_names():
        path, origin, base = BUILTIN_DIR / f"{task}.toml", task, None
    elif path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise UsageError(f"task spec file not found: {task}")
        origin, base = str(path), path.parent.resolve()
    else:
        raise UsageError(f"unknown task {task!r}; built-in tasks: {', '.join(builtin_names())}")
    raw = _read_toml(path, origin)
    if overrides:
        raw = apply_overrides(raw, overrides)
        raw.get("data", {}).pop("digest", None) if _touches_data(overrides) else None
    spec = spec_from_dict(raw, origin=origin, base_dir=base)
    return spec.with_p(p) if p is not None else spec


def _touches_data(overrides: Sequence[str]) -> bool:
    """Overrides of the synthetic generator change the data, so the pinned digest goes."""
    return any(o.startswith("data.synthetic.") for o in overrides)

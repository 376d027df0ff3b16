"""Task specs (TOML), the built-in registry and loaded, trainable tasks."""

from attribution.tasks.registry import builtin_names, resolve_spec
from attribution.tasks.runtime import Task, load_task
from attribution.tasks.spec import TaskSpec, parse_spec

__all__ = ["Task", "TaskSpec", "builtin_names", "load_task", "parse_spec", "resolve_spec"]

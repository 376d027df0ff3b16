"""Errors a user can act on.

:class:`UsageError` carries a one-line message; the CLI prints it and exits with code 2
before anything is written.
"""


class UsageError(Exception):
    """Bad input from the user: unknown task, malformed spec, p outside (0, 1), ..."""


class StoreMismatchError(UsageError):
    """A result store belongs to another task, plan or layout."""


class StoreCorruptError(Exception):
    """A result store's files disagree with its manifest."""

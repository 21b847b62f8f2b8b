"""Exceptions that the command line reports as one line on stderr."""


class NsepError(Exception):
    """An expected failure with a message meant for the user."""


class InputError(NsepError):
    """An input file that cannot be used; the batch goes on without it."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class OutputExistsError(NsepError):
    """Refusal to overwrite an existing file without being asked."""

    def __init__(self, path: str):
        super().__init__(f"{path}: already exists (use --overwrite to replace it)")
        self.path = path


class UsageError(NsepError):
    """A command line that cannot be carried out as given (exit status 2)."""

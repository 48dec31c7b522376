"""One exception family for errors a person can act on.

Library code raises `LabError` (or a subclass) with a one-line message that says what to do; the CLI catches it
once, prints the message and exits non-zero. Anything else is a bug and keeps its traceback.
"""


class LabError(Exception):
    """A user-facing error: the message is one actionable line."""

    exit_code = 1


class ConfigError(LabError):
    """Missing or malformed configuration (env, flags, credentials file)."""

    exit_code = 2


class ServerError(LabError):
    """Label Studio or the storage API could not be reached or refused the request."""

    exit_code = 3


class NotFound(LabError):
    """A project, storage, bucket or prefix that does not exist."""

    exit_code = 4

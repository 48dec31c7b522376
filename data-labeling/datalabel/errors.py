"""One exception family for errors a person can act on.

Library code raises `LabError` (or a subclass) with a one-line message that says what to do; the CLI catches it
once, prints the message and exits with the kind's code (EXIT_CODES, the table the README prints). Anything else
is a bug and keeps its traceback.
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


# What each exit code of both CLIs means (the README's table is this one).
EXIT_CODES = {
    0: "success",
    1: "failure: the work could not be done (data that cannot be converted, a refused operation)",
    2: "usage: a wrong option, value, label config or credentials file; nothing was changed",
    3: "a service could not be reached or refused the request (Label Studio, the bucket, git/DVC remote)",
    4: "not found: a project, storage, bucket, object, file or version that does not exist",
    130: "interrupted (Ctrl-C); nothing half-written is left",
}


def require(module: str, extra: str, purpose: str):
    """Import an optional library (an extra of the datalabel package), or a ConfigError naming how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"{purpose} needs {module}, an optional part: pip install 'datalabel[{extra}]' (the "
                          f"Docker stack: DATALABEL_EXTRAS={extra} ./docker-shell.sh builds the image with it)") from None

"""Exception types that carry a message a person can act on."""


class HarnessError(Exception):
    """A failure the user can fix; the CLI prints its message without a traceback."""

    exit_code = 1


class UsageError(HarnessError):
    """Bad input on the command line (unknown name, eps out of range, ...): exit code 2."""

    exit_code = 2


class OptionsNotResolvedError(UsageError, KeyError):
    """A spec's ``build`` was handed options that were not resolved (a plain mapping without
    every declared option): the message says to call ``spec.resolve_options(given)`` first.
    A :class:`KeyError` too, which is what such a ``build`` raised before."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class PluginError(HarnessError):
    """A plugin failed to load or registered something invalid; the message names the plugin."""

    exit_code = 2


class DatasetNotFoundError(HarnessError):
    """A dataset's files are not where we looked; the message says where and how to get them."""

    exit_code = 2


class InvalidAttackOutput(HarnessError):
    """An attack returned adversarial examples the harness will not score (wrong shape,
    non-finite, outside [0, 1] or over its budget); the message names the attack, the measured
    value and the bound."""


class UndeclaredOptionsWarning(UserWarning):
    """A plugin registered a model, attack or defense that declares no options: they reach
    its ``build`` unchecked and stay out of the cache keys and ``harness list --options``."""


NAME_LIMIT = 80


def quoted(name: str, limit: int = NAME_LIMIT) -> str:
    """``name`` as messages show a name the user typed: quoted with control characters escaped
    (``'fg\\nsm'``, so it cannot forge a line of output) and cut to ``limit`` characters with
    ``…``."""
    return repr(name if len(name) <= limit else name[:limit] + "…")


# What a plugin's failure never swallows: Ctrl-C, and a generator being closed.
PASS_THROUGH = (KeyboardInterrupt, GeneratorExit)

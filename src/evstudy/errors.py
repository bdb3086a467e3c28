"""Typed errors: the library raises these; only the CLI turns them into exit codes.

Every message names the bad value, where it came from and what would be accepted.
"""

from __future__ import annotations

EXIT_INTERNAL = 1  # an unexpected exception: a bug, reported in one line by the CLI
EXIT_BAD_INPUT = 2
EXIT_DATA_UNAVAILABLE = 3


class EvstudyError(Exception):
    """Base class of every error evstudy raises on purpose.

    The message is kept to one line (a line break, e.g. quoted from a bad
    file, becomes a space; other spacing is kept, as it may be part of the
    bad value): the CLI prints it as one ``Error: ...`` line.
    """

    exit_code: int = EXIT_BAD_INPUT

    def __init__(self, message: object = "", *args: object):
        super().__init__(" ".join(str(message).splitlines()), *args)


class ConfigError(EvstudyError):
    """A config file or command-line option is malformed or has a bad value."""


class DataSourceError(EvstudyError):
    """Prices could not be read: unreadable file, wrong shape, unknown ticker."""


class UnknownTickerError(DataSourceError):
    """Tickers asked for are absent from the price source."""

    def __init__(self, message: str, tickers: list[str]):
        super().__init__(message)
        self.tickers = tickers


class DownloadError(DataSourceError):
    """The network source failed (offline, rate-limited, empty answer)."""

    exit_code = EXIT_DATA_UNAVAILABLE


class CalendarError(EvstudyError):
    """An event cannot be placed on the trading calendar or in the data."""


class InsufficientDataError(EvstudyError):
    """Too little data to estimate anything (e.g. every ticker excluded)."""

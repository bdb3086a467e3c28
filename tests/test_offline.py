"""A machine that cannot reach Yahoo: the first call says so, nothing is retried, the advice is --prices.

yfinance (1.7) does not raise for a failed ticker: it answers an empty frame
and logs why, e.g. "['MP', 'SPY']: DNSError('Failed to perform, curl: (6)
Could not resolve host: query2.finance.yahoo.com. ...')". These tests produce
those shapes twice: with yfinance's own ``download`` over a ``Ticker.history``
that raises curl_cffi's real exceptions, and with a stand-in at the
``yfinance.download`` boundary that logs the captured text. No network, ever.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pandas as pd
import pytest
import yfinance
from click.testing import CliRunner
from curl_cffi.requests.exceptions import ConnectionError as CurlConnectionError
from curl_cffi.requests.exceptions import DNSError, Timeout
from yfinance import utils as yf_utils

import evstudy.prices.yahoo as yahoo_module
from evstudy.cli import cli
from evstudy.errors import DownloadError
from evstudy.prices import YahooSource

REPO = Path(__file__).resolve().parents[1]
JAN = (dt.date(2024, 1, 1), dt.date(2024, 1, 31))
TICKERS = ["SPY", "MP", "USAR", "LAC", "TMQ", "UAMY", "CRML", "NB", "PPTA", "IDR", "TMC", "UUUU"]

# What curl_cffi raises on this kind of machine (curl error codes 6, 7 and 28), as yfinance 1.7 reprs them.
DNS = DNSError("Failed to perform, curl: (6) Could not resolve host: query2.finance.yahoo.com. "
               "See https://curl.se/libcurl/c/libcurl-errors.html first for more details.")
REFUSED = CurlConnectionError("Failed to perform, curl: (7) Failed to connect to query2.finance.yahoo.com port 443 "
                              "after 2 ms: Couldn't connect to server. See https://curl.se/libcurl/c/"
                              "libcurl-errors.html first for more details.")
NO_ROUTE = CurlConnectionError("Failed to perform, curl: (7) Failed to connect to query2.finance.yahoo.com port 443 "
                               "after 3 ms: No route to host.")
TIMEOUT = Timeout("Failed to perform, curl: (28) Operation timed out after 10002 milliseconds with 0 bytes received.")
# requests/urllib3 (older yfinance), as quoted in yfinance issues #2024 and #2347
REQUESTS_DNS = ("ConnectionError(MaxRetryError('HTTPSConnectionPool(host=\\'fc.yahoo.com\\', port=443): Max retries "
                "exceeded with url: / (Caused by NameResolutionError(\"<urllib3.connection.HTTPSConnection object>: "
                "Failed to resolve \\'fc.yahoo.com\\' ([Errno -2] Name or service not known)\"))'))")
REQUESTS_REFUSED = ("ConnectionError(MaxRetryError(\"HTTPSConnectionPool(host='fc.yahoo.com', port=443): Max retries "
                    "exceeded with url: / (Caused by NewConnectionError('<urllib3.connection.HTTPSConnection "
                    "object>: Failed to establish a new connection: [Errno 111] Connection refused'))\"))")


@pytest.fixture
def waits(monkeypatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(yahoo_module, "_pause", slept.append)
    return slept


@pytest.fixture
def history_raises(monkeypatch):
    """yfinance's own download, every ``Ticker.history`` raising ``error`` as curl_cffi would."""
    asked: list[str] = []

    def install(error: Exception) -> list[str]:
        def history(self, *args, **kwargs):
            asked.append(self.ticker)
            raise error

        monkeypatch.setattr(yfinance.Ticker, "history", history)
        return asked

    return install


def logging_download(error_text: str, calls: list[list[str]]):
    """A stand-in for ``yfinance.download`` that fails every ticker the way 1.7 does: empty frame, logged reason."""

    def download(tickers, **kwargs):
        tickers = sorted({t.upper() for t in tickers})
        calls.append(tickers)
        log = logging.getLogger("yfinance")
        for ticker in tickers:
            log.error("Failed to get ticker '%s' reason: %s", ticker, error_text)
        log.error("\n%.f Failed download%s:", len(tickers), "s" if len(tickers) > 1 else "")
        log.error(f"{tickers}: " + error_text)
        frames = {t: yf_utils.empty_df() for t in tickers}
        data = pd.concat(frames.values(), axis=1, sort=True, keys=frames.keys(), names=["Ticker", "Price"])
        data.columns = data.columns.swaplevel(0, 1)
        return data

    return download


@pytest.mark.parametrize("error, cause", [
    (DNS, "did not resolve"), (REFUSED, "refused"), (NO_ROUTE, "no network route"),
])
def test_real_yfinance_over_curl_errors_stops_at_the_first_call(history_raises, waits, tmp_path, error, cause):
    asked = history_raises(error)
    with pytest.raises(DownloadError) as info:
        YahooSource(cache_dir=tmp_path).load(TICKERS, *JAN)
    message = str(info.value)
    assert message.startswith("cannot reach Yahoo Finance: ") and cause in message
    assert "--prices PATH" in message and "evstudy fetch CONFIG" in message
    assert "SPY, MP, USAR, LAC, TMQ, UAMY, CRML, NB and 4 more" in message  # the list, once and short
    assert "curl.se" not in message
    assert asked == ["SPY"] and waits == []  # one ticker probed, no retry, no wait
    assert info.value.exit_code == 3


def test_a_timeout_is_retried_not_called_unreachable(history_raises, waits, tmp_path):
    history_raises(TIMEOUT)
    with pytest.raises(DownloadError, match="no prices from Yahoo") as info, pytest.warns(UserWarning):
        YahooSource(cache_dir=tmp_path).load(["SPY", "MP"], *JAN)
    assert "curl: (28)" in str(info.value) and "4 attempt(s)" in str(info.value)
    assert waits == [1.0, 2.0, 4.0]


@pytest.mark.parametrize("text", [repr(DNS), repr(REFUSED), REQUESTS_DNS, REQUESTS_REFUSED])
def test_logged_unreachable_causes_stop_without_retry(monkeypatch, waits, tmp_path, text):
    calls: list[list[str]] = []
    monkeypatch.setattr(yfinance, "download", logging_download(text, calls))
    with pytest.raises(DownloadError, match="cannot reach Yahoo Finance"):
        YahooSource(cache_dir=tmp_path).load(["SPY", "MP"], *JAN)
    assert calls == [["MP", "SPY"]] and waits == []


def test_a_ticker_yahoo_says_has_no_data_is_not_asked_again(monkeypatch, waits, tmp_path):
    calls: list[list[str]] = []
    said = "YFPricesMissingError('possibly delisted; no price data found  (1d 2024-01-01 -> 2024-02-01)')"
    monkeypatch.setattr(yfinance, "download", logging_download(said, calls))
    with pytest.raises(DownloadError, match="no prices from Yahoo") as info, pytest.warns(UserWarning):
        YahooSource(cache_dir=tmp_path).load(["ZZZZ"], *JAN)
    assert calls == [["ZZZZ"]] and waits == []
    assert "Yahoo has no data" in str(info.value) and "1 attempt(s)" in str(info.value)


def test_retry_lines_name_a_long_list_once_and_short(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(yahoo_module, "_pause", lambda seconds: None)
    calls: list[list[str]] = []
    monkeypatch.setattr(yfinance, "download", logging_download("YFRateLimitError('Too Many Requests')", calls))
    with caplog.at_level(logging.WARNING, logger="evstudy"), pytest.raises(DownloadError), pytest.warns(UserWarning):
        YahooSource(cache_dir=tmp_path).load(TICKERS, *JAN)
    retries = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Yahoo: retry")]
    assert len(retries) == 3
    assert "SPY, MP, USAR, LAC, TMQ, UAMY, CRML, NB and 4 more" in retries[0]
    assert all("the same 12 tickers" in line for line in retries[1:])
    assert calls[0] == ["SPY"]  # the probe; a rate limit is not a lost network, so the batch follows


def test_the_main_config_without_network_exits_3_at_once_with_the_cause(history_raises, waits, tmp_path):
    asked = history_raises(DNS)
    result = CliRunner().invoke(cli, ["run", str(REPO / "configs" / "jpm-sri-2025.toml"),
                                      "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 3, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: cannot reach Yahoo Finance: the name of Yahoo's server")
    assert "--prices PATH" in lines[0] and "and 84 more" in lines[0]
    assert asked == ["SPY"] and waits == [] and not (tmp_path / "out").exists()


def test_fetch_config_fills_the_cache_with_what_the_study_needs(monkeypatch, tmp_path):
    """`evstudy fetch CONFIG` asks for every ticker and benchmark over required_dates (placebo span
    included); then `run CONFIG --offline` needs no call at all."""
    from market_fakes import EVENT, FlakyYahoo, market

    from evstudy.config import load_config
    from evstudy.study import required_dates

    asked: list[tuple[list[str], str]] = []
    fake = FlakyYahoo(market())

    def download(tickers, start=None, end=None, **kwargs):
        asked.append((sorted(tickers), start))
        return fake(tickers, start=start, end=end, **kwargs)

    monkeypatch.setattr(yfinance, "download", download)
    monkeypatch.setattr(yahoo_module, "_today", lambda: dt.date(2024, 9, 5))
    config = tmp_path / "study.toml"
    config.write_text(
        f'name = "s"\nbenchmark = "SPY"\nplacebo_dates = {{placebo}}\n'
        f'[[events]]\nid = "e"\ndate = {EVENT}\n'
        '[[baskets]]\nname = "b"\ntickers = ["AAA", "BBB"]\nbenchmarks = ["SPY", "QQQ"]\n'.replace("{placebo}", "0")
    )
    cache = tmp_path / "cache"
    result = CliRunner().invoke(cli, ["fetch", str(config), "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    assert "Cached 4 of 4 tickers" in result.stdout and "of study 's'" in result.stdout
    first, _ = required_dates(load_config(config))
    assert asked == [(["AAA", "BBB", "QQQ", "SPY"], f"{first:%Y-%m-%d}")]
    run = CliRunner().invoke(cli, ["run", str(config), "--offline", "--cache-dir", str(cache),
                                   "--out", str(tmp_path / "out"), "--quiet"])
    assert run.exit_code == 0, run.output
    assert len(asked) == 1  # nothing more was needed

    # with placebo dates the study reaches two years further back, and fetch --config asks for that span
    config.write_text(config.read_text().replace("placebo_dates = 0", "placebo_dates = 50"))
    placebo_first, _ = required_dates(load_config(config))
    assert placebo_first < first
    result = CliRunner().invoke(cli, ["fetch", "--config", str(config), "--cache-dir", str(tmp_path / "cache2")])
    assert result.exit_code == 0, result.output
    assert asked[-1][1] == f"{placebo_first:%Y-%m-%d}"


def test_fetch_needs_tickers_and_dates_or_a_config(tmp_path):
    result = CliRunner().invoke(cli, ["fetch", "AAA"])
    assert result.exit_code == 2 and "give TICKERS with --start and --end" in result.stderr
    result = CliRunner().invoke(cli, ["fetch", "AAA", "--config", str(REPO / "configs" / "jpm-sri-2025.toml")])
    assert result.exit_code == 2 and "either a CONFIG" in result.stderr

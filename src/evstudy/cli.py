"""The ``evstudy`` command: a thin Click shell over the library.

Each command parses its options, calls one library function, and turns the
library's typed errors into a one-line message and exit status 2 (bad input)
or 3 (data source unavailable); anything else is a bug, reported in one line
with exit status 1 (docs/errors.md lists every case). No computation lives here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import logging
import os
import sys
import traceback
import warnings
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from evstudy._version import __version__
from evstudy.config import (
    MAX_PERMUTATIONS, MAX_SEED, MODELS, ad_hoc_config, load_config, parse_tickers, parse_window,
)
from evstudy.errors import EXIT_INTERNAL, ConfigError, EvstudyError

F = TypeVar("F", bound=Callable[..., Any])


def _one_line(text: object) -> str:
    """``text`` on one line: line breaks become spaces, other spacing (part of a quoted value) is kept."""
    return " ".join(str(text).splitlines())


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """A warning as one 'Warning: ...' line on stderr, without Python's file and source line.

    Deprecation notices raised inside third-party libraries (pandas inside
    yfinance, say) are for their maintainers, not for evstudy's users: dropped.
    """
    ours = Path(filename).resolve().is_relative_to(Path(__file__).resolve().parent)
    if not ours and issubclass(category, (DeprecationWarning, PendingDeprecationWarning, FutureWarning)):
        return
    click.echo(f"Warning: {_one_line(message)}", err=True)


class _EchoHandler(logging.Handler):
    """Progress logged by the library (e.g. a download retry) as plain lines on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(_one_line(record.getMessage()), err=True)


def _friendly_errors(func: F) -> F:
    """Turn library errors into one 'Error: ...' line on stderr and the error's exit code.

    Warnings print as 'Warning: ...' lines, the library's log records at
    level WARNING as plain lines. Any other exception is a bug: one
    line naming it and where it was raised, exit status 1 (EVSTUDY_DEBUG=1
    re-raises it for the traceback). Ctrl-C exits with 130, no traceback.
    """

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        log = logging.getLogger("evstudy")
        handler = _EchoHandler(logging.WARNING)
        log.addHandler(handler)
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            try:
                return func(*args, **kwargs)
            except EvstudyError as exc:
                click.echo(f"Error: {_one_line(exc)}", err=True)
                sys.exit(exc.exit_code)
            except KeyboardInterrupt:
                click.echo(
                    "Error: interrupted (outputs and cache files are replaced whole: --out holds the previous "
                    "complete set or this run's, never a mix)",
                    err=True,
                )
                sys.exit(130)
            except (click.ClickException, click.exceptions.Exit, click.Abort):
                raise
            except BrokenPipeError:
                # The reader of our output went away (e.g. `| head`): the files are already written;
                # point stdout at /dev/null so the interpreter's final flush cannot fail again.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                sys.exit(0)
            except Exception as exc:
                if os.environ.get("EVSTUDY_DEBUG"):
                    raise
                where = traceback.extract_tb(exc.__traceback__)[-1]
                click.echo(
                    f"Error: internal error {type(exc).__name__}: {_one_line(exc)} (at {Path(where.filename).name}:"
                    f"{where.lineno}); this is a bug in evstudy {__version__}: please report it with the command "
                    f"you ran (EVSTUDY_DEBUG=1 shows the traceback)",
                    err=True,
                )
                sys.exit(EXIT_INTERNAL)
            finally:
                log.removeHandler(handler)

    return wrapper  # type: ignore[return-value]


def _echo_written(paths: dict[str, Path], out_dir: Path, report: str) -> None:
    """Where every output went, and the report's address to open in a browser."""
    click.echo(f"Wrote {', '.join(p.name for p in paths.values())} to {out_dir}/")
    click.echo(f"Open the report: {paths[report].resolve().as_uri()}")


def _notice_replacing(out_dir: Path, *, given_out: bool) -> None:
    """Say so when a default output folder already holds a run that this one replaces (never silently)."""
    if not given_out and (out_dir / "results.json").is_file():
        click.echo(f"Note: replacing the earlier run in {out_dir}/ (give --out FOLDER to keep it)", err=True)


def _source_options(func: F) -> F:
    """Where prices come from: shared by every command that loads prices."""
    options = [
        click.option(
            "--prices",
            type=click.Path(path_type=Path),
            help="Read prices from a file or folder instead of Yahoo Finance: a folder of TICKER.csv "
            "(Date,Close or Date,Adj Close), a long CSV/Parquet (date,ticker,close) or a wide one "
            "(date + one column per ticker).",
        ),
        click.option("--offline", is_flag=True, help="Never touch the network: use only the local cache."),
        click.option("--refresh", is_flag=True, help="Re-download everything from Yahoo Finance, ignoring the cache."),
        click.option(
            "--cache-dir",
            type=click.Path(path_type=Path),  # checked only when the cache is used (not with --prices)
            envvar="EVSTUDY_CACHE",
            help="Cache folder for downloaded prices [env: EVSTUDY_CACHE; default: the user cache folder].",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _max_report_option(func: F) -> F:
    """The report size cap shared by run and compare."""
    return click.option(
        "--max-report-mb", type=click.FloatRange(min=0, min_open=True), default=50.0, show_default=True,
        help="Largest report.html to write, in MB; a larger one (thousands of tickers) is replaced by a "
        "summary-only page, as browsers need minutes to open it. The CSVs and results.json always hold everything.",
    )(func)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="evstudy")
def cli() -> None:
    """Market event studies: did this news move these stocks, by how much, and is it significant?

    \b
    Typical use:
      evstudy run configs/jpm-sri-2025.toml
      evstudy run --event 2025-10-13:before_open --tickers MP,USAR,LAC --benchmark SPY
      evstudy fetch configs/jpm-sri-2025.toml
      evstudy fetch MP,USAR,SPY --start 2024-01-01 --end 2025-12-31
    """


@cli.command()
@click.argument("config", required=False, type=click.Path(path_type=Path))
@_source_options
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Output folder [default: reports/<config name>/; ad hoc: reports/<date>-<tickers>/].")
@click.option("--title", help="Title of the report [default: the config's title; ad hoc: the tickers and the date].")
@click.option("--event", help="Ad hoc event: DATE[:before_open|during|after_close] or an ISO timestamp with zone.")
@click.option("--tickers", help="Ad hoc tickers, comma-separated (they form one basket named 'all').")
@click.option("--benchmark", default=None,
              help="Benchmark ticker [default: SPY]; with a CONFIG it replaces every basket's benchmarks.")
@click.option("--estimation-window", help="Estimation window as START,END [default: -250,-11; with a CONFIG: its own].")
@click.option("--window", "windows", multiple=True,
              help="Event window START,END; repeat for several [default: 0,0 -1,1 0,1 0,5 -5,5 -10,10; with a "
              "CONFIG: its own].")
@click.option("--model", type=click.Choice(MODELS), default=None,
              help="Expected-return model [default: market; with a CONFIG: its own].")
@click.option("--min-returns", type=click.IntRange(min=3), default=None,
              help="Ad hoc minimum valid estimation-window returns per ticker [default: 120].")
@click.option("--accept-breaks", is_flag=True,
              help="Estimate each stock whose estimation window has a detected variance break (e.g. a SPAC "
              "merger) on the returns from the break on; without it, breaks are only flagged.")
@click.option("--placebo", "placebo_dates", type=click.IntRange(min=0, max=100_000), default=None,
              help="Pseudo-event days drawn for the placebo tests; 0 switches them off "
              "[default: the config's placebo_dates, else 1000].")
@click.option("--seed", type=click.IntRange(min=0, max=MAX_SEED), default=None,
              help="Seed of the pseudo-event-day draw, for reproducible placebo p-values "
              "[default: the config's seed, else 12345].")
@click.option("--quiet", is_flag=True, help="Print only where the files went.")
@click.option("--xlsx", is_flag=True, help="Also write results.xlsx: every table of the run, one sheet each.")
@click.option("--strict", is_flag=True,
              help="Stop (exit 3) if a Yahoo download still fails after its retries, instead of leaving "
              "those tickers out with the reason.")
@click.option("--events", "events_file", type=click.Path(path_type=Path),
              help="Request file (CSV or Parquet), one row per firm-event: event_id,ticker,date and optionally "
              "timing,benchmark,group,label. Needs --prices.")
@click.option("--drop-overlaps", is_flag=True,
              help="Request files: exclude firm-events that overlap another event of the same firm (else flagged).")
@click.option("--scheduler",
              help="Request files: run on a Dask cluster at this address (tcp://HOST:8786), or 'local' for a "
              "LocalCluster; needs evstudy[dask].")
@_max_report_option
@_friendly_errors
def run(
    config: Path | None,
    prices: Path | None,
    offline: bool,
    refresh: bool,
    cache_dir: Path | None,
    out: Path | None,
    title: str | None,
    event: str | None,
    tickers: str | None,
    benchmark: str | None,
    estimation_window: str | None,
    windows: tuple[str, ...],
    model: str | None,
    min_returns: int | None,
    accept_breaks: bool,
    placebo_dates: int | None,
    seed: int | None,
    quiet: bool,
    xlsx: bool,
    strict: bool,
    max_report_mb: float,
    events_file: Path | None = None,
    drop_overlaps: bool = False,
    scheduler: str | None = None,
) -> None:
    """Run an event study from CONFIG (a TOML file), from --event and --tickers, or from a request file (--events).

    Writes report.html, results.json, abnormal_returns.csv, cars.csv and
    tests.csv into --out (and comparisons.csv when two baskets share a
    benchmark) and prints a summary. With a CONFIG, --benchmark, --model,
    --window and --estimation-window override the file's settings.
    """
    # A study's products are thin or not BLAS at all: multithreaded OpenBLAS only adds its thread start-up
    # (~0.06 CPU s a process here, benchmarks/README.md). Set before numpy loads; the user's own setting wins.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from evstudy.requests import request_config_in

    request = request_config_in(config) if config is not None and config.suffix.lower() == ".toml" else None
    if events_file is not None or request is not None:
        _run_request(
            request, events_file, prices=prices, out=out, scheduler=scheduler, quiet=quiet,
            drop_overlaps=drop_overlaps, options={
                "--benchmark": benchmark, "--estimation-window": estimation_window, "--window": windows,
                "--model": model, "--min-returns": min_returns,
            }, unused={
                "--event": event, "--tickers": tickers, "--accept-breaks": accept_breaks, "--placebo": placebo_dates,
                "--seed": seed, "--offline": offline, "--refresh": refresh, "--strict": strict, "--xlsx": xlsx,
                "--title": title,
            },
        )
        return
    from evstudy.api import name_ad_hoc, run_study, with_overrides
    from evstudy.report.writing import check_output_folder

    request_only = {"--drop-overlaps": drop_overlaps, "--scheduler": scheduler}
    if any(request_only.values()):
        flag = next(f for f, v in request_only.items() if v)
        raise ConfigError(f"{flag} applies to request files only: give --events FILE (or a config with events_file)")
    ad_hoc = {"--event": event, "--tickers": tickers, "--min-returns": min_returns}
    given = [flag for flag, value in ad_hoc.items() if value]
    if config is not None:
        if given:
            raise ConfigError(
                f"{', '.join(given)} cannot be combined with a CONFIG file: put them in the config, "
                f"or drop CONFIG for an ad hoc run"
            )
        study = with_overrides(
            load_config(config), title=title, benchmark=benchmark, model=model,
            windows=[parse_window(w, " (--window)") for w in windows],
            estimation_window=parse_window(estimation_window, " (--estimation-window)") if estimation_window else None,
        )
    else:
        if not event or not tickers:
            raise ConfigError("give a CONFIG file, or both --event DATE[:timing] and --tickers A,B,C")
        study = ad_hoc_config(
            event=event,
            tickers=[t for t in tickers.split(",") if t.strip()] or [tickers],
            benchmark=benchmark or "SPY",
            model=model or "market",
            estimation_window=parse_window(estimation_window, " (--estimation-window)") if estimation_window else None,
            windows=[parse_window(w, " (--window)") for w in windows],
            min_estimation_returns=min_returns or 120,
        )
        study = name_ad_hoc(dataclasses.replace(study, title=title) if title else study)
    if accept_breaks:
        study = dataclasses.replace(study, accept_breaks=True)
    placebo = {"placebo_dates": placebo_dates, "seed": seed}
    if any(value is not None for value in placebo.values()):
        study = dataclasses.replace(study, **{key: value for key, value in placebo.items() if value is not None})
    out_dir = out or Path("reports") / study.name
    check_output_folder(out_dir)
    _notice_replacing(out_dir, given_out=out is not None)
    _reuse_freed_memory(one_arena=True)  # one arena: Corrado's test of a large basket runs in a thread (inference.py)
    results = run_study(
        study, prices=prices, offline=offline, refresh=refresh, cache_dir=cache_dir,
        progress=sys.stderr.isatty(), strict=strict,
    )
    # The writers (plotly, jinja2) load only now: a run that cannot get its prices fails without them.
    from evstudy.report.catalogue_section import catalogue_text
    from evstudy.report.compare_section import comparison_text
    from evstudy.report.files import write_outputs
    from evstudy.report.terminal import summary_text

    paths = write_outputs(results, out_dir, xlsx=xlsx, max_report_bytes=int(max_report_mb * 1e6))
    if not quiet:
        click.echo(summary_text(results))
        click.echo("")
        for text in (catalogue_text(results), comparison_text(results, top=5)):
            if text:
                click.echo(text + "\n")
    _echo_written(paths, out_dir, "report.html")


def _run_request(
    request: Any,
    events_file: Path | None,
    *,
    prices: Path | None,
    out: Path | None,
    scheduler: str | None,
    quiet: bool,
    drop_overlaps: bool,
    options: dict[str, Any],
    unused: dict[str, Any],
) -> None:
    """``run --events FILE`` or a config with events_file: every firm-event of a request file."""
    from evstudy.report.request_files import request_summary_text, write_request_outputs
    from evstudy.report.writing import check_output_folder
    from evstudy.requests import RequestConfig
    from evstudy.scale import run_request_file

    _reuse_freed_memory(one_arena=True)
    given = [flag for flag, value in unused.items() if value]
    if given:
        raise ConfigError(f"{given[0]} cannot be used with a request file (--events or events_file)")
    settings: dict[str, Any] = {}
    if options["--benchmark"]:
        settings["benchmark"] = options["--benchmark"]
    if options["--estimation-window"]:
        settings["estimation_window"] = parse_window(options["--estimation-window"], " (--estimation-window)")
    if options["--window"]:
        settings["windows"] = tuple(parse_window(w, " (--window)") for w in options["--window"])
    if options["--model"]:
        settings["model"] = options["--model"]
    if options["--min-returns"]:
        settings["min_estimation_returns"] = options["--min-returns"]
    if drop_overlaps:
        settings["drop_overlaps"] = True
    if events_file is not None:
        settings["events_file"] = str(events_file)
    if request is None:
        name = "".join(c if c.isalnum() or c in "_.-" else "-" for c in Path(settings["events_file"]).stem) or "request"
        request = RequestConfig(name=name.strip("-.") or "request", **settings)
    elif settings:
        given = [flag for flag, value in options.items() if value]
        if given:
            raise ConfigError(f"{given[0]} cannot be combined with a CONFIG file: put it in the config")
        request = dataclasses.replace(request, **settings)
    out_dir = out or Path("reports") / request.name
    check_output_folder(out_dir)  # a bad --out costs nothing: checked before the computation
    results = run_request_file(request, prices, scheduler=scheduler)
    paths = write_request_outputs(results, out_dir)
    if not quiet:
        click.echo(request_summary_text(results))
        click.echo("")
    _echo_written(paths, out_dir, "report.html")


@cli.command()
@click.argument("config", type=click.Path(path_type=Path))
@_source_options
@click.option("--baskets", help="Baskets to compare, comma-separated names from CONFIG [default: every basket].")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Output folder [default: reports/<config name>-compare/].")
@click.option("--permutations", type=click.IntRange(min=1, max=MAX_PERMUTATIONS), default=None,
              help=f"Label shuffles of the permutation test, at most {MAX_PERMUTATIONS:,} [default: 10000].")
@click.option("--seed", type=click.IntRange(min=0, max=MAX_SEED), default=None,
              help="Seed of the permutation test, for reproducible p-values [default: the config's seed, else 12345].")
@click.option("--quiet", is_flag=True, help="Print only where the files went.")
@click.option("--xlsx", is_flag=True, help="Also write results.xlsx: every table of the run, one sheet each.")
@_max_report_option
@_friendly_errors
def compare(
    config: Path,
    prices: Path | None,
    offline: bool,
    refresh: bool,
    cache_dir: Path | None,
    baskets: str | None,
    out: Path | None,
    permutations: int | None,
    seed: int | None,
    quiet: bool,
    xlsx: bool,
    max_report_mb: float,
) -> None:
    """Compare the baskets of CONFIG (all of them, or --baskets): CAAR with 95% CI, ranking, and every pair's
    difference with Welch and permutation tests, corrected for the number of pairs (Holm, Benjamini-Hochberg).

    Writes compare.html (the comparison first, linking to the full study
    report), comparisons.csv (event, basket_a, basket_b, window_start,
    window_end, diff, t, p_welch, p_permutation, ..., family_size, p_holm,
    q_bh, verdict) and the study's usual outputs into --out.
    """
    from evstudy.api import compare_study
    from evstudy.report.writing import check_output_folder

    if out is not None:
        check_output_folder(out)

    names = [b.strip() for b in baskets.split(",") if b.strip()] if baskets is not None else None
    chosen = {"n_permutations": permutations, "seed": seed}
    results = compare_study(
        config, baskets=names, prices=prices, offline=offline, refresh=refresh, cache_dir=cache_dir,
        progress=sys.stderr.isatty(), **{key: value for key, value in chosen.items() if value is not None},
    )
    from evstudy.report.compare_page import PAGE, render_compare_page  # after the prices: see `run`
    from evstudy.report.compare_section import comparison_text
    from evstudy.report.files import write_outputs

    out_dir = out or Path("reports") / f"{results.config.name}-compare"
    _notice_replacing(out_dir, given_out=out is not None)
    paths = write_outputs(results, out_dir, xlsx=xlsx, extra={PAGE: render_compare_page(results).encode("utf-8")},
                          max_report_bytes=int(max_report_mb * 1e6), command="compare")
    if not quiet:
        click.echo(comparison_text(results))
        click.echo("")
    _echo_written(paths, out_dir, PAGE)


@cli.command()
@click.argument("target", required=False, metavar="TICKERS|CONFIG")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Fill the cache with exactly what this study config needs (every ticker and benchmark, "
              "over the dates it uses, placebo span included); same as giving CONFIG.")
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), help="First date, YYYY-MM-DD (with TICKERS).")
@click.option("--end", type=click.DateTime(["%Y-%m-%d"]), help="Last date (inclusive), YYYY-MM-DD (with TICKERS).")
@click.option("--refresh", is_flag=True, help="Re-download even what the cache already holds.")
@click.option("--cache-dir", type=click.Path(path_type=Path), envvar="EVSTUDY_CACHE",
              help="Cache folder [env: EVSTUDY_CACHE; default: the user cache folder].")
@click.option("--strict", is_flag=True,
              help="Exit 3 if any ticker still fails after its retries (what did download is cached).")
@_friendly_errors
def fetch(
    target: str | None, config_path: Path | None, start: dt.datetime | None, end: dt.datetime | None,
    refresh: bool, cache_dir: Path | None, strict: bool,
) -> None:
    """Download adjusted closes into the local cache: TICKERS (comma-separated) from --start to --end,
    or everything a study CONFIG needs (then `evstudy run CONFIG --offline` works without network).

    Exits 0 only if every ticker that Yahoo delivered is in the cache; a cache
    folder that cannot be created or written is exit 2 (before downloading).
    """
    from evstudy.prices import YahooSource
    from evstudy.prices.cache import PriceCache

    if target is not None and config_path is None and (target.endswith(".toml") or Path(target).is_file()):
        target, config_path = None, Path(target)
    source = YahooSource(cache_dir=cache_dir, refresh=refresh, progress=sys.stderr.isatty(), strict=strict)
    cache = PriceCache(source.cache_dir)
    cache.ensure_writable()
    if config_path is not None:
        if target is not None or start is not None or end is not None:
            raise ConfigError("give either a CONFIG (its tickers and dates), or TICKERS with --start and --end")
        from evstudy.api import load_study_prices
        from evstudy.study import required_dates

        study = load_config(config_path)
        first, last = (day.date() for day in required_dates(study))
        data = load_study_prices(study, source=source)
        names = list(dict.fromkeys(data.closes.columns.tolist() + list(data.missing)))
        span = f" for {first:%Y-%m-%d}..{last:%Y-%m-%d}"
        what = f" of study {study.name!r}"
    else:
        if target is None or start is None or end is None:
            raise ConfigError("give TICKERS with --start and --end (YYYY-MM-DD), or a study CONFIG file")
        if end < start:
            raise ConfigError(f"--end {end.date()} is before --start {start.date()}: give an end on or after the start")
        names = list(parse_tickers([t for t in target.split(",") if t.strip()] or [target], " (TICKERS)"))
        first, last = start.date(), end.date()
        data = source.load(names, first, last)
        span, what = "", ""
    for note in data.notes:
        click.echo(note)
    covered_until = min(last, dt.date.today() - dt.timedelta(days=1))  # today's bar is never cached
    cached = [t for t in names if covered_until < first or cache.covers(t, first, covered_until)]
    click.echo(f"Cached {len(cached)} of {_count(len(names), 'ticker')}{span}{what} in {data.location}")
    if data.missing:
        click.echo(f"No data from Yahoo Finance for: {', '.join(data.missing)}", err=True)
    unstored = [t for t in names if t not in cached and t not in data.missing and t not in data.details["failed"]]
    if unstored:
        raise ConfigError(
            f"downloaded but could not write {', '.join(unstored)} to the price cache {cache.dir} (see the "
            "warnings above): free some space, or point --cache-dir or EVSTUDY_CACHE at a folder you can write"
        )


def _count(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless n is 1: "1 stock", "3 stocks"."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


@cli.command()
@click.option("--event", required=True,
              help="The event: DATE[:before_open|during|after_close] or an ISO timestamp with zone.")
@click.option("--prices", required=True, type=click.Path(path_type=Path),
              help="The whole market: a long Parquet/CSV (date,ticker,close), a wide file or a folder of TICKER.csv.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Output folder [default: reports/scan-<date>/].")
@click.option("--benchmark", default="SPY", show_default=True, help="Benchmark ticker of the model.")
@click.option("--model", default="market", show_default=True,
              help="Expected-return model: market, constant_mean or market_adjusted.")
@click.option("--estimation-window", help="Estimation window as START,END [default: -250,-11].")
@click.option("--window", "windows", multiple=True,
              help="Event window START,END; repeat for several [default: 0,0 -1,1 0,1 0,5 -5,5 -10,10].")
@click.option("--top", type=click.IntRange(min=1), default=50, show_default=True,
              help="How many top and bottom movers the report lists.")
@click.option("--min-price", type=float, default=1.0, show_default=True,
              help="Price floor: the last close before day 0 and the median estimation-window close must reach it.")
@click.option("--min-returns", type=click.IntRange(min=3), default=120, show_default=True,
              help="Minimum valid returns in the estimation window.")
@click.option("--max-zero-share", type=float, default=0.5, show_default=True,
              help="Maximum share of exactly-zero returns in the estimation window.")
@click.option("--highlight", "--tickers-of-interest", "highlight",
              help="Covered tickers to locate in the ranking, comma-separated (e.g. MP,USAR,LAC).")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Also highlight every basket ticker of this study config.")
@click.option("--quiet", is_flag=True, help="Print only where the files went.")
@_friendly_errors
def scan(
    event: str,
    prices: Path,
    out: Path | None,
    benchmark: str,
    model: str,
    estimation_window: str | None,
    windows: tuple[str, ...],
    top: int,
    min_price: float,
    min_returns: int,
    max_zero_share: float,
    highlight: str | None,
    config_path: Path | None,
    quiet: bool,
) -> None:
    """Rank every ticker in --prices by its abnormal return around --event.

    Filters out dirty series (invalid or penny prices, too few or too many
    zero returns, gaps in the event window) and counts what each filter
    removed; writes scan.csv (every ranked ticker with CAR, t, p and the
    Benjamini-Hochberg q-value per window), scan.json and scan.html into --out.
    """
    # A short-lived process with hundreds of MB of temporaries: numpy's transparent huge pages fault in
    # slower and less predictably than 4 KB pages here (benchmarks/README.md). Set before numpy loads;
    # the user's own NUMPY_MADVISE_HUGEPAGE wins.
    os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
    _reuse_freed_memory()
    from evstudy.config import Window, parse_event
    from evstudy.report.scan_files import scan_summary_text, write_scan_outputs
    from evstudy.report.writing import check_output_folder
    from evstudy.scan import ScanConfig, scan_market

    if out is not None:
        check_output_folder(out)

    marked = [t for t in (highlight or "").split(",") if t.strip()]
    if config_path is not None:
        marked += [t for basket in load_config(config_path).baskets for t in basket.tickers]
    settings = ScanConfig(
        event=parse_event(event),
        benchmark=benchmark,
        model=model,  # type: ignore[arg-type]
        estimation_window=parse_window(estimation_window, " (--estimation-window)") if estimation_window
        else Window(-250, -11),
        windows=tuple(parse_window(w, " (--window)") for w in windows) if windows else ScanConfig.windows,
        top=top,
        min_price=min_price,
        min_returns=min_returns,
        max_zero_share=max_zero_share,
        highlight=tuple(marked),
    )
    results = scan_market(settings, prices)
    out_dir = out or Path("reports") / f"scan-{results.timeline.day0:%Y-%m-%d}"
    paths = write_scan_outputs(results, out_dir)
    if not quiet:
        click.echo(scan_summary_text(results))
        click.echo("")
    _echo_written(paths, out_dir, "scan.html")


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8  # glibc's mallopt parameters (malloc.h)
_MMAP_THRESHOLD_MAX = 32 * 2**20  # glibc's upper limit for M_MMAP_THRESHOLD on 64-bit


def _reuse_freed_memory(one_arena: bool = False) -> None:
    """Let glibc's malloc hand freed (days x tickers) arrays back out instead of returning them to the OS.

    By default each ~20 MB numpy temporary of a whole-market scan is a fresh
    mmap, and every one of its pages faults in anew (~13,000 faults, ~0.07 CPU s
    of a ~0.75 s scan, benchmarks/README.md). Blocks up to 32 MB now come from the
    heap, which is never trimmed while the (short-lived) process runs. A request
    file's blocks run in two threads, and a study's Corrado test of a large basket
    in a second one: ``one_arena`` has those threads allocate from the main heap
    too, so the next block's ~10 MB arrays land in pages already mapped
    (~110,000 fewer faults, ~0.6 of ~5.3 CPU s at 10^5 firm-events). Process-wide
    settings, so only the CLI, which owns its process, makes them; a notebook
    calling the library keeps its own. Not glibc: nothing to do.
    """
    import ctypes

    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is not None:
        mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
        mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
        if one_arena:
            mallopt(_M_ARENA_MAX, 1)


def main() -> None:
    """Console-script entry point.

    On the way out, ``gc.freeze()`` spares the interpreter's final garbage
    collection over every object pandas, pyarrow and scipy created (~0.15 s,
    a tenth of a whole-market scan): the process is ending, files are
    already closed, and atexit handlers and stream flushing still run.
    On the way in, the cyclic collector's first threshold goes from 700 to
    50,000 allocations: a short run creates millions of small objects, and
    collecting them 70 times less often took 0.05-0.15 CPU s off the main
    job (~1.5 s, benchmarks/README.md) for a few MB of garbage held longer.
    """
    gc.set_threshold(50_000, 20, 10)
    try:
        cli(prog_name="evstudy")
    finally:
        gc.freeze()

#!/usr/bin/env python
"""Request-file benchmarks (issue 9): ``evstudy run --events`` against a read-only process, same run.

Draws request files of random firm-events from the shared market file (a
random (ticker, date) row of the file with a 2023-01-01..2026-06-30 date,
so any ticker with data; half the rows in group "up", half "down"; seed 9)
and, after one untimed request run (a machine's first run compiles the
engine's numba kernels into the evstudy cache; later runs load them), times,
alternately, two child processes:

  read     ``python -c "import pandas as pd; pd.read_parquet(PATH)"``
  request  ``evstudy run --events FILE --prices PATH --out DIR --quiet``
           (every output: cars.parquet, cars.csv, groups.csv, tests.csv,
           excluded.csv, results.json, report.html)

Targets (issue 9 acceptance):

  ratio    the 100,000-firm-event process at most 3x the read process
           (median of the per-pair ratios)
  rss      its peak resident memory (wait4) under 4 GiB
  report   its report.html under 10 MB
  scaling  at 10^4, 5*10^4 and 10^5 firm-events, doubling the firm-events at
           most doubles the time beyond the read: (t(10^5) - r) <= 2 (t(5*10^4) - r),
           r the read process's median wall time

It also prints each process's CPU time (user + system, from wait4) and its
ratio to the read process's: on this shared 2-core machine other jobs
stretch wall times by 2-5x, far less the CPU seconds a process spends.

Usage::

    python benchmarks/requests.py            # 3 pairs per size
    python benchmarks/requests.py --quick    # 10^4 firm-events only, 1 pair: a smoke run (< 1 min)

Exits 1 if a target is missed, 2 if it cannot run (no data). Not in CI: the
full run takes minutes; the quick mode checks only that the path runs and
prints its ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PRICES = REPO.parent / "shared" / "data" / "us_equities_daily_2021_2026.parquet"
SIZES = (10_000, 50_000, 100_000)
RATIO_MAX, RSS_MAX, REPORT_MAX = 3.0, 4 * 1024**3, 10 * 1000**2


def run_process(command: list[str]) -> tuple[float, int, float]:
    """Wall time (s), peak RSS (bytes) and CPU time (user + system, s) of one child process, from os.wait4."""
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            errors.seek(0)
            raise RuntimeError(f"{' '.join(command)} failed: {errors.read().decode()[-2000:]}")
    return wall, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime


def draw_request(prices: Path, n: int, path: Path, seed: int = 9) -> None:
    """``n`` random firm-events: rows of the market file dated 2023-01-01 to 2026-06-30."""
    import numpy as np
    import pandas as pd

    rows = pd.read_parquet(prices, columns=["date", "ticker"])
    rows = rows[(rows["date"] >= "2023-01-01") & (rows["date"] <= "2026-06-30")]
    rng = np.random.default_rng(seed)
    picked = rows.iloc[rng.integers(0, len(rows), n)]
    pd.DataFrame({
        "event_id": [f"e{i}" for i in range(n)],
        "ticker": picked["ticker"].astype(str).to_numpy(),
        "date": picked["date"].dt.strftime("%Y-%m-%d").to_numpy(),
        "group": np.where(rng.random(n) < 0.5, "up", "down"),
    }).to_csv(path, index=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prices", type=Path, default=Path(os.environ.get("EVSTUDY_BENCH_PRICES", DEFAULT_PRICES)))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--pairs", type=int, default=None)
    args = parser.parse_args()
    if not args.prices.exists():
        print(f"no market file at {args.prices}", file=sys.stderr)
        return 2
    sizes = SIZES[:1] if args.quick else SIZES
    pairs = args.pairs or (1 if args.quick else 3)
    script = Path(sys.executable).with_name("evstudy")
    evstudy = [str(script)] if script.exists() else [sys.executable, "-m", "evstudy"]
    read = [sys.executable, "-c", f"import pandas as pd; pd.read_parquet({str(args.prices)!r})"]
    work = Path(tempfile.mkdtemp(prefix="evstudy-requests-"))
    # The steady state a user has from a file's second read on: its local index (prices/dataset.py) exists.
    build = "import sys; from evstudy.prices.dataset import ensure_index; sys.exit(ensure_index(sys.argv[1]) is None)"
    indexed = subprocess.run([sys.executable, "-c", build, str(args.prices)]).returncode == 0
    print(f"local index of {args.prices.name}: {'ready' if indexed else 'none (read from the file)'}", flush=True)
    run_process(read)  # warm the page cache
    # The steady state from a machine's second request run on: the engine's compiled kernels (numba, kept in the
    # evstudy cache folder's numba/) exist. The first run ever compiles them (seconds); this untimed run does it.
    warm = work / "request-warm.csv"
    draw_request(args.prices, 1_000, warm)
    run_process([*evstudy, "run", "--events", str(warm), "--prices", str(args.prices), "--out", str(work / "out-warm"),
                 "--quiet"])
    reads, walls, ratios, rss, report, cpus, cpu_ratios = [], {}, {}, {}, {}, {}, {}
    for n in sizes:
        request = work / f"request-{n}.csv"
        draw_request(args.prices, n, request)
        command = [*evstudy, "run", "--events", str(request), "--prices", str(args.prices), "--out", str(work / f"out-{n}"),
                   "--quiet"]
        walls[n], ratios[n], cpus[n], cpu_ratios[n] = [], [], [], []
        for i in range(pairs):
            first, second = (read, command) if i % 2 == 0 else (command, read)
            a, b = run_process(first), run_process(second)
            (read_wall, _, read_cpu), (wall, peak, cpu) = (a, b) if first is read else (b, a)
            reads.append(read_wall)
            walls[n].append(wall)
            ratios[n].append(wall / read_wall)
            cpus[n].append(cpu)
            cpu_ratios[n].append(cpu / read_cpu)
            rss[n] = max(rss.get(n, 0), peak)
        report[n] = (work / f"out-{n}" / "report.html").stat().st_size
        print(f"{n:>7,} firm-events: wall median {statistics.median(walls[n]):6.2f} s "
              f"(runs {', '.join(f'{w:.2f}' for w in walls[n])}), ratio to read median "
              f"{statistics.median(ratios[n]):.2f}x, peak RSS {rss[n] / 1024**3:.2f} GiB, report {report[n] / 1e6:.2f} MB; "
              f"CPU median {statistics.median(cpus[n]):.2f} s, {statistics.median(cpu_ratios[n]):.2f}x the read's")
    read_median = statistics.median(reads)
    print(f"read process: median {read_median:.2f} s over {len(reads)} runs")
    failed = []
    largest = sizes[-1]
    if statistics.median(ratios[largest]) > RATIO_MAX:
        failed.append(f"ratio {statistics.median(ratios[largest]):.2f}x > {RATIO_MAX}x at {largest:,}")
    if rss[largest] >= RSS_MAX:
        failed.append(f"peak RSS {rss[largest] / 1024**3:.2f} GiB >= 4 GiB")
    if report[largest] >= REPORT_MAX:
        failed.append(f"report {report[largest] / 1e6:.1f} MB >= 10 MB")
    if len(sizes) == 3:
        beyond = {n: statistics.median(walls[n]) - read_median for n in sizes}
        print(f"time beyond the read: {', '.join(f'{n:,}: {b:.2f} s' for n, b in beyond.items())}; "
              f"10^5 / 5*10^4 = {beyond[100_000] / beyond[50_000]:.2f} (target <= 2)")
        # The literal target exceeds 2 for a perfectly linear process whose fixed costs are below the read's
        # (t(n) - read has a negative intercept); the marginal cost per firm-event shows linearity itself.
        wall, cpu = ({n: statistics.median(v[n]) for n in sizes} for v in (walls, cpus))
        marginal = [(f"{a:,}->{b:,}", (wall[b] - wall[a]) / (b - a) * 1e6, (cpu[b] - cpu[a]) / (b - a) * 1e6)
                    for a, b in zip(sizes, sizes[1:])]
        print("marginal cost per firm-event (medians): "
              + "; ".join(f"{span}: {w:.1f} us wall, {c:.1f} us CPU" for span, w, c in marginal)
              + f"; fixed part (wall intercept at 0) {wall[sizes[0]] - marginal[0][1] * sizes[0] / 1e6:.2f} s "
              f"against the read's {read_median:.2f} s")
        if beyond[100_000] > 2 * beyond[50_000]:
            failed.append("doubling the firm-events more than doubled the time beyond the read")
    for line in failed:
        print(f"MISSED: {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

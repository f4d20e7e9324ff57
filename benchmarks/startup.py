"""Start-up time: `import discretion` and `discretion --help`, each in a fresh process.

Run: python benchmarks/startup.py [--n 20] [--top 10]

Each command runs `--n` times as a subprocess of the running interpreter (after one untimed run
that warms the file cache), interleaved so that load on the machine falls on both alike; the
wall time of each run is measured here, so interpreter start-up is included, as a user or CI
waits for it. Prints best, p50 and p99 per command, the bare interpreter (`python -c pass`) as
the floor nothing can beat, and then the `--top` modules by cumulative import time for each
command, read from `python -X importtime` (one run each).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS: dict[str, list[str]] = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "import discretion": [sys.executable, "-c", "import discretion"],
    "discretion --help": [sys.executable, "-m", "discretion.cli", "--help"],
}


def _run(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _slowest_imports(command: list[str], top: int) -> list[tuple[int, str]]:
    """(cumulative microseconds, module) of the `top` slowest imports, read from -X importtime."""
    done = subprocess.run(
        [command[0], "-X", "importtime", *command[1:]],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    found: list[tuple[int, str]] = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.removeprefix("import time:").split("|")
        found.append((int(cumulative), name.rstrip()))
    return sorted(found, reverse=True)[:top]


def main() -> None:
    """Time each command and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="Timed runs of each command.")
    parser.add_argument("--top", type=int, default=10, help="Slowest imports to list.")
    args = parser.parse_args()

    for command in COMMANDS.values():
        _run(command)
    samples: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.n):
        for name, command in COMMANDS.items():
            samples[name].append(_run(command))

    print(f"wall time of a fresh process, {args.n} runs each ({sys.executable})")
    print(f"  {'command':<20} {'best':>9} {'p50':>9} {'p99':>9}")
    for name, times in samples.items():
        best, p50, p99 = min(times), statistics.median(times), _percentile(times, 0.99)
        print(f"  {name:<20} {best * 1e3:7.0f}ms {p50 * 1e3:7.0f}ms {p99 * 1e3:7.0f}ms")
    for name in ("import discretion", "discretion --help"):
        print(f"\nslowest imports of `{name}` (cumulative, -X importtime, one run)")
        for cumulative, module in _slowest_imports(COMMANDS[name], args.top):
            print(f"  {cumulative / 1e3:7.1f}ms  {module}")


if __name__ == "__main__":
    main()

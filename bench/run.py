"""Run the benchmarks and record their figures.

    python bench/run.py                     # every bench/bench_*.py, in name order
    python bench/run.py bench_catalogue     # only these (`catalogue` works too)

Each benchmark module exposes `main() -> dict[str, float]`. Every figure is printed as
`name value` on stdout as soon as its module returns, and merged into `bench/results.json`
(a flat `{"figure.name": number}` object): figures of benchmarks that did not run are
kept, so benchmarks can be run one at a time. Progress and errors go to stderr.

Exit status: 0 if every benchmark ran, 1 if one raised (the others still run and their
figures are still recorded), 2 for a usage error (unknown benchmark, unreadable results).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results.json"
PREFIX = "bench_"

Figures = dict[str, float]


class UsageError(Exception):
    pass


def discover() -> list[str]:
    """The benchmark modules' names, e.g. `bench_catalogue`."""
    return sorted(p.stem for p in BENCH_DIR.glob(f"{PREFIX}*.py"))


def resolve(arg: str, known: list[str]) -> str:
    """`bench_catalogue`, `catalogue` or `bench/bench_catalogue.py` -> `bench_catalogue`."""
    name = Path(arg).stem if arg.endswith(".py") else arg
    if not name.startswith(PREFIX):
        name = PREFIX + name
    if name not in known:
        raise UsageError(f"unknown benchmark {arg!r} (known: {', '.join(known) or 'none'})")
    return name


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCH_DIR / f"{name}.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {name}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def read_results() -> Figures:
    if not RESULTS.exists():
        return {}
    try:
        data = json.loads(RESULTS.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{RESULTS}: cannot read it ({exc}); fix or delete it") from exc
    if not isinstance(data, dict):
        raise UsageError(f"{RESULTS}: not a JSON object; fix or delete it")
    return data


def write_results(results: Figures) -> None:
    """Atomically, so that an interrupted run never leaves half a file."""
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(dict(sorted(results.items())), indent=2) + "\n")
    os.replace(tmp, RESULTS)


def checked(name: str, figures: object) -> Figures:
    """The figures a module returned, or TypeError if they are not a flat name -> number map."""
    if not isinstance(figures, dict):
        raise TypeError(f"{name}.main() returned {type(figures).__name__}, not a dict")
    for key, value in figures.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"{name}: figure name {key!r} is not a non-empty string")
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not math.isfinite(value):
            raise TypeError(f"{name}: figure {key!r} = {value!r} is not a finite number")
    return figures


def run(names: list[str]) -> int:
    results = read_results()
    failed: list[str] = []
    for name in names:
        print(f"# {name}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            figures = checked(name, load(name).main())
        except Exception:
            traceback.print_exc()
            print(f"# {name}: FAILED", file=sys.stderr, flush=True)
            failed.append(name)
            continue
        for figure, value in figures.items():
            print(f"{figure} {value}", flush=True)
        results.update(figures)
        write_results(results)
        elapsed = time.perf_counter() - started
        print(f"# {name}: {len(figures)} figures in {elapsed:.1f} s", file=sys.stderr, flush=True)
    if failed:
        print(f"# failed: {', '.join(failed)}", file=sys.stderr, flush=True)
        return 1
    return 0


def main(argv: list[str]) -> int:
    known = discover()
    try:
        names = [resolve(arg, known) for arg in argv] if argv else known
        if not names:
            raise UsageError(f"no {PREFIX}*.py in {BENCH_DIR}")
        return run(list(dict.fromkeys(names)))
    except UsageError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

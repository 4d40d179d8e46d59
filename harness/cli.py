"""``harness``: run suites, report results, merge shards, compare results, list what is available.

Exit codes: 0 success; 1 a suite ran but some of its runs failed (they are in the results as errors);
2 bad input (suite, file, argument), reported on one line without a traceback; 128 + N when stopped by signal N
(130 Ctrl-C, 143 SIGTERM, 129 SIGHUP): the results file then holds the finished runs, marked incomplete.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .environment import REPO_ROOT

SUITES_DIR = "suites"


class InputError(ValueError):
    """Bad input on the command line (reported on one line, exit status 2)."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {value:g}")
    return value


def _write(text: str, output: str | None) -> None:
    print(text)
    if output:
        from .results import write_atomically

        write_atomically(text + "\n", Path(output))
        print(f"report written to {output}", file=sys.stderr)


def cmd_run(args: argparse.Namespace) -> int:
    from .report.cli import write_views  # the same report as `harness report --output` (plots, exports)
    from .results import check_writable
    from .run.executor import DEFAULT_TIMEOUT_S, run_suite
    from .suite import load_suite

    if not Path(args.suite).is_file():
        raise InputError(f"suite file not found: {args.suite}")
    suite = load_suite(args.suite)
    if args.report:
        check_writable(args.report, "--report")  # found now, not after hours of measuring
    shard = None
    if args.shard is not None:
        from .run.shard import Shard

        try:
            shard = Shard.parse(args.shard)
        except ValueError as exc:
            raise InputError(str(exc)) from None
    results, path = run_suite(
        suite,
        output=args.output,
        only=args.only,
        max_queries=args.max_queries,
        timeout_s=args.timeout or DEFAULT_TIMEOUT_S,
        progress=not args.no_progress,
        train_max_pairs=args.train_max_pairs,
        overwrite=args.overwrite,
        resume=args.resume,
        shard=shard,
    )
    print(f"results written to {path}", file=sys.stderr)
    views = {"plots": not args.no_plots, "export_dir": args.export_dir, "quality": args.quality}
    _write(write_views([results], [str(path)], args.report, **views), args.report)
    from .run.shard import EMPTY_SHARD

    failed = [r for r in results["runs"] if r["status"] != "ok" and not r["error"].startswith(EMPTY_SHARD)]
    if failed:
        print(f"{len(failed)} of {len(results['runs'])} runs failed (see the status column)", file=sys.stderr)
        return 1
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from .results.merge import merge_to

    path = merge_to(args.results, args.output, overwrite=args.overwrite)
    print(f"{len(args.results)} shards merged into {path}", file=sys.stderr)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report.cli import report_text  # plots beside --output, --export-dir CSV/JSON (verdict)

    _write(report_text(args), args.output)
    return 0


def find_suites() -> list[Path]:
    """Suite files in ./suites, then in the repository's suites/ (no duplicates)."""
    found: dict[Path, None] = {}
    for directory in (Path.cwd() / SUITES_DIR, REPO_ROOT / SUITES_DIR):
        if directory.is_dir():
            for path in sorted(directory.glob("*.y*ml")):
                found.setdefault(path.resolve(), None)
    return list(found)


def cmd_list(args: argparse.Namespace) -> int:
    from .backends.registry import BACKENDS
    from .localmodels import LOCAL_MODELS, PREFIX
    from .scenarios import SCENARIOS
    from .sources.registry import SOURCES
    from .suite import SuiteError, load_suite

    print("Suites:")
    suites = find_suites()
    for path in suites:
        try:
            suite = load_suite(path)
            d, r = len(suite.datasets), len(suite.rerankers)
            shown = f"{d} dataset{'s' * (d != 1)}, {r} reranker{'s' * (r != 1)}"
            if suite.train is not None:
                t = len(suite.train.reranker_names())
                shown += f", {t} trained reranker{'s' * (t != 1)}"
            shown_path = path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path
            print(f"  {shown_path}: {suite.name} ({shown})")
        except (SuiteError, OSError) as exc:
            print(f"  {path}: invalid ({exc})")
    if not suites:
        print(f"  none in ./{SUITES_DIR} or {REPO_ROOT / SUITES_DIR}")
    print("Dataset sources:")
    for source in SOURCES.values():
        print(f"  {source.key}: {source.description}")
    print("Backends:")
    for backend in BACKENDS.values():
        options = (
            f"options: {', '.join(sorted(backend.options)) or 'none'}; trains: {', '.join(backend.trainers) or '-'}"
        )
        print(f"  {backend.name}: {backend.description} ({options})")
    print("Scenarios (measure.scenarios):")
    for scenario in SCENARIOS.values():
        print(f"  {scenario.name}: {scenario.description}")
    print("Local models (model: local:<name>):")
    for name, (text, _) in LOCAL_MODELS.items():
        print(f"  {PREFIX}{name}: {text}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from .schemas import schema_text

    text = schema_text(args.kind)
    if args.output:
        from .results import write_atomically

        write_atomically(text, Path(args.output))
        print(f"schema written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _add_run(sub: argparse._SubParsersAction) -> None:
    from .report.cli import add_options as add_report_options

    run = sub.add_parser(
        "run",
        help="run a suite and print its leaderboard",
        description="Run every (reranker, dataset) of a suite, each in its own process; write a "
        "results file and print the leaderboard. Exit 1 when some runs failed.",
    )
    run.add_argument("suite", metavar="SUITE", help="suite YAML file (e.g. suites/smoke.yaml)")
    run.add_argument(
        "--output",
        metavar="FILE",
        help="results file (default: results/<suite>-<UTC timestamp>.json, "
        "made unique); an existing file is refused unless --overwrite or --resume",
    )
    run.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    run.add_argument(
        "--resume",
        action="store_true",
        help="complete an existing --output file of the same suite and settings: keep its ok runs "
        "(same candidates, same weights), run the rest",
    )
    run.add_argument("--only", nargs="+", metavar="NAME", help="run only these rerankers and/or datasets")
    run.add_argument("--max-queries", type=_positive_int, metavar="N", help="use at most N queries per dataset")
    run.add_argument(
        "--timeout",
        type=_positive_float,
        metavar="SECONDS",
        help="wall-clock limit per (reranker, dataset) run and per training (default: 4 hours)",
    )
    run.add_argument(
        "--train-max-pairs",
        type=_positive_int,
        metavar="N",
        help="train each model of the suite's train: section on at most N pairs (a reduced trial; "
        "caps the recipe's max_pairs)",
    )
    run.add_argument(
        "--shard",
        metavar="I/N",
        help="run only shard I of N of every dataset's queries (1 <= I <= N; a query's shard is sha256 of its "
        "id mod N, the same on every machine); recorded in the results; `harness merge` joins the N files",
    )
    run.add_argument(
        "--report",
        metavar="FILE",
        help="also write the leaderboard to this Markdown file, with its plots beside it (as harness report --output)",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_report_options(run)  # --no-plots, --export-dir, --quality: the same as harness report's
    run.set_defaults(func=cmd_run)


def _add_report(sub: argparse._SubParsersAction) -> None:
    from .report.cli import add_options as add_report_options

    report = sub.add_parser(
        "report",
        help="Markdown leaderboard from results files",
        description="Merge results files (e.g. one per chip) into one Markdown leaderboard "
        "per dataset; print it and optionally write it.",
    )
    report.add_argument("results", nargs="+", metavar="RESULTS.json", help="results files of `harness run`")
    report.add_argument("--output", metavar="FILE", help="write the report here too (e.g. report/NAME.md)")
    add_report_options(report)
    report.set_defaults(func=cmd_report)


def _add_merge(sub: argparse._SubParsersAction) -> None:
    merge = sub.add_parser(
        "merge",
        help="merge the shards of one suite run into one results file",
        description="Merge the results files of `harness run --shard I/N` (all N shards of one suite, same "
        "settings, commit and candidates) into one file: per-query quality values joined (metrics equal to an "
        "unsharded run's), speed pooled pass by pass. Non-comparable, overlapping or missing shards are refused "
        "with the file and field named (exit 2).",
    )
    merge.add_argument("results", nargs="+", metavar="SHARD.json", help="results files of `harness run --shard`")
    merge.add_argument("--output", required=True, metavar="FILE", help="the merged results file")
    merge.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    merge.set_defaults(func=cmd_merge)


def _add_list(sub: argparse._SubParsersAction) -> None:
    lister = sub.add_parser(
        "list",
        help="suites, dataset sources, backends, scenarios and local models",
        description="List the suites in ./suites, the dataset sources, the backends, the measurement scenarios "
        "(measure.scenarios) and the local models.",
    )
    lister.set_defaults(func=cmd_list)


def _add_schema(sub: argparse._SubParsersAction) -> None:
    schema = sub.add_parser(
        "schema",
        help="JSON Schema of suite files or results files",
        description="Print the JSON Schema generated from the typed records of suite files or "
        "results files (committed as docs/schemas/*.schema.json).",
    )
    schema.add_argument("kind", choices=["suite", "results"], help="which file format")
    schema.add_argument("--output", metavar="FILE", help="write it here instead of printing it")
    schema.set_defaults(func=cmd_schema)


def _add_compare(sub: argparse._SubParsersAction) -> None:
    from .compare.cli import add_parser  # harness compare BASE.json HEAD.json (issue 9)

    add_parser(sub)


SUBCOMMANDS = (_add_run, _add_report, _add_merge, _add_list, _add_schema, _add_compare)  # in --help's order


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness",
        description="Benchmark and evaluate document rerankers: same candidates, same truncation for every system.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .results import ResultsError
    from .run.interrupt import Interrupted, stop_reason
    from .suite import SuiteError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (InputError, SuiteError, ResultsError, FileNotFoundError) as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:  # a SuiteError holds one problem per line
            print(f"harness: error: {line}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Interrupted) as exc:
        where = getattr(exc, "results_path", None)
        saved = f"; the finished runs are in {where} (marked incomplete)" if where else ""
        print(f"harness: {stop_reason(exc)}{saved}", file=sys.stderr)
        return 128 + (exc.signum if isinstance(exc, Interrupted) else 2)


if __name__ == "__main__":
    sys.exit(main())

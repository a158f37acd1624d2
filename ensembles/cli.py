"""The ``ensembles`` command line: run, resume, demo, info, summary, plot.

Every command delegates to the Python API; errors print one line (``--debug`` for the
traceback) and exit with status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]


def _add_scheduler_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("where to run")
    g.add_argument("--scheduler", metavar="ADDRESS", help="dask scheduler, e.g. tcp://host:8786")
    g.add_argument("--scheduler-file", metavar="PATH", help="scheduler file of a dask cluster")
    g.add_argument(
        "--workers", type=int, metavar="N", help="workers of the embedded local cluster"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")


def _add_method_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--method",
        default="linear",
        metavar="NAME",
        help="NumPy's quantile method: linear (default), hazen, weibull, median_unbiased, "
        "normal_unbiased, interpolated_inverted_cdf, inverted_cdf, averaged_inverted_cdf, "
        "closest_observation, lower, higher, midpoint, nearest",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ensembles",
        description="Run statistical ensembles and parameter sweeps of simulations.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("run", help="run a TOML/JSON spec into a Zarr store")
    p.add_argument("spec", help="the run specification (.toml or .json)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.zarr", help="store path or URL")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--overwrite", action="store_true", help="replace an existing store")
    how.add_argument(
        "--resume",
        action="store_true",
        help="finish or extend an existing store (only missing and new members run)",
    )
    p.add_argument("--batch-size", type=int, metavar="N", help="members per task")
    p.add_argument("--force", action="store_true", help="break a dead writer's lease")
    _add_scheduler_options(p)

    p = sub.add_parser(
        "resume", help="finish a stored run: rerun members that are not ok (spec from the store)"
    )
    p.add_argument("store", metavar="OUT.zarr", help="store path or URL")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--failed", action="store_true", help="rerun only failed members")
    which.add_argument("--pending", action="store_true", help="run only pending members")
    p.add_argument("--retries", type=int, default=0, help="extra attempts per failing member")
    p.add_argument("--force", action="store_true", help="break a dead writer's lease")
    _add_scheduler_options(p)

    p = sub.add_parser("demo", help="run the Ising temperature ensemble and plot its envelope")
    p.add_argument("--out", default=".", metavar="DIR", help="directory for the store and PNG")
    p.add_argument("--samples", type=int, default=50, help="temperatures drawn around T0")
    p.add_argument("--seeds", type=int, default=4, help="seeds per temperature")
    p.add_argument("--size", type=int, default=100, metavar="L", help="lattice size L")
    p.add_argument("--n-sweeps", type=int, default=10_000, help="Monte Carlo sweeps per member")
    p.add_argument("--overwrite", action="store_true", help="replace an existing demo store")
    _add_scheduler_options(p)

    p = sub.add_parser("info", help="describe a saved ensemble")
    p.add_argument("store", metavar="OUT.zarr")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("summary", help="per design point: mean, std, n and quantiles")
    p.add_argument("store", metavar="OUT.zarr")
    p.add_argument(
        "--over",
        nargs="+",
        default=None,
        metavar="DIM",
        help="member dims to summarize over (default: seed, one row per design point)",
    )
    p.add_argument(
        "-q",
        "--quantiles",
        nargs="*",
        type=float,
        default=[0.025, 0.5, 0.975],
        metavar="Q",
        help="quantiles in [0, 1]",
    )
    p.add_argument(
        "--var",
        nargs="+",
        metavar="NAME",
        help="outputs (default: the scalar ones, else those with the most common dims)",
    )
    p.add_argument(
        "--aggregate",
        metavar="HOW",
        help="reduce each member's time series first: mean, median, last, ...",
    )
    _add_method_option(p)
    p.add_argument(
        "-o", "--output", metavar="FILE", help="write .csv, .parquet or .json (default: print)"
    )

    p = sub.add_parser("plot", help="plot the mean and quantile envelope of an output")
    p.add_argument("store", metavar="OUT.zarr")
    p.add_argument("--var", required=True, metavar="NAME", help="the output to plot")
    p.add_argument(
        "--over",
        nargs="+",
        default=None,
        metavar="DIM",
        help="member dims the envelope spans (default: all member dims)",
    )
    p.add_argument(
        "-q",
        "--quantiles",
        nargs=2,
        type=float,
        default=[0.025, 0.975],
        metavar=("LO", "HI"),
        help="the band's quantiles",
    )
    _add_method_option(p)
    p.add_argument("-o", "--output", required=True, metavar="FILE.png", help="image file")

    return parser


def _client_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if getattr(args, "workers", None) is not None:
        if args.workers < 1:
            msg = f"--workers must be at least 1, got {args.workers}"
            raise ValueError(msg)
        kwargs["workers"] = args.workers
    if getattr(args, "scheduler_file", None):
        kwargs["scheduler"] = args.scheduler_file
    elif getattr(args, "scheduler", None):
        kwargs["scheduler"] = args.scheduler
    return kwargs


def cmd_run(args: argparse.Namespace) -> int:
    from .ensemble import Ensemble
    from .spec import load_spec, run_options

    spec = load_spec(args.spec)
    ensemble = Ensemble.from_spec(spec)
    options = run_options(spec)
    if args.batch_size:
        options["batch_size"] = args.batch_size
    mode = "w" if args.overwrite else "resume" if args.resume else "w-"
    ds = ensemble.to_zarr(
        args.output,
        mode=mode,
        force=args.force,
        progress=not args.quiet,
        **_client_kwargs(args),
        **options,
    )
    print(_done_line(ds, args.output))
    return 0


def _done_line(ds: Any, where: str) -> str:
    status = ds["status"].values
    from .layout import FAILED, OK, SKIPPED

    ok, failed = int((status == OK).sum()), int((status == FAILED).sum())
    skipped = int((status == SKIPPED).sum())
    failed_txt = f", {failed} failed (see `ensembles info {where}`)" if failed else ""
    if skipped:
        failed_txt += f" ({skipped} not run: the adaptive rule needed no more)"
    return f"{where}: {ok} of {status.size - skipped} members ok{failed_txt}"


def cmd_resume(args: argparse.Namespace) -> int:
    from .ensemble import Ensemble
    from .store.zarr_store import EnsembleStore

    spec = EnsembleStore(args.store).spec()
    ensemble = Ensemble.from_spec(spec)
    only = "failed" if args.failed else "pending" if args.pending else None
    ds = ensemble.to_zarr(
        args.store,
        mode="resume",
        only=only,
        force=args.force,
        retries=args.retries,
        progress=not args.quiet,
        **_client_kwargs(args),
    )
    print(_done_line(ds, args.store))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    store, png = run_demo(
        args.out,
        samples=args.samples,
        seeds=args.seeds,
        L=args.size,
        n_sweeps=args.n_sweeps,
        overwrite=args.overwrite,
        progress=not args.quiet,
        **_client_kwargs(args),
    )
    print(f"store: {store}\nplot:  {png}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .store.describe import describe

    info = describe(args.store)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        print(format_info(info))
    return 0


def format_info(info: dict[str, Any]) -> str:
    lines = [f"ensemble store {info['path']}"]
    lines.append(f"  simulation: {info['simulation']}")
    lines.append(f"  design:     {info['design']}")
    if info.get("fixed"):
        lines.append(f"  fixed:      {info['fixed']}")
    seeds = info["seeds"]
    per_point = "adaptive (below)" if isinstance(seeds, dict) else f"{seeds} per point"
    lines.append(f"  seeds:      {per_point}, root_seed {info['root_seed']}")
    dims = ", ".join(f"{k}: {v}" for k, v in info["dims"].items())
    lines.append(f"  dims:       {dims}")
    lines.append(f"  outputs:    {', '.join(info['outputs'])}")
    c = info["members"]
    skipped = f", {c['skipped']} skipped" if "skipped" in c else ""
    lines.append(
        f"  members:    {c['ok']} ok, {c['failed']} failed, {c['pending']} pending{skipped} "
        f"of {c['total']}"
    )
    if info.get("adaptive"):
        lines.extend(_adaptive_lines(info["adaptive"]))
    for text, count in list(info.get("errors", {}).items())[:10]:
        lines.append(f"    {count} x {text}")
    if info.get("finished"):
        lines.append(f"  finished:   {info['finished']}")
    return "\n".join(lines)


def _adaptive_lines(adaptive: dict[str, Any]) -> list[str]:
    from .adaptive.record import progress_text
    from .adaptive.rules import Adaptive, as_targets

    rule = Adaptive.from_dict(adaptive["rule"])
    targets = "; ".join(t.describe() for t in as_targets(adaptive["until"]))
    return [
        f"  adaptive:   {adaptive['state']}, {progress_text(adaptive)}",
        f"  target:     {targets}",
        f"  rule:       {rule.initial} to {rule.max} {rule.grow}s per point",
    ]


def cmd_summary(args: argparse.Namespace) -> int:
    import warnings

    from .analysis.summary import summary, write_table
    from .store.zarr_store import open_ensemble

    ds = open_ensemble(args.store)
    over = None if args.over is None else args.over[0] if len(args.over) == 1 else tuple(args.over)
    with warnings.catch_warnings():  # the note is printed below, with the options to use
        warnings.simplefilter("ignore", UserWarning)
        table = summary(
            ds,
            over=over,
            q=tuple(args.quantiles),
            vars=args.var,
            aggregate=args.aggregate,
            method=args.method,
        )
    if args.output:
        path = write_table(table, args.output)
        print(f"wrote {len(table)} rows to {path}")
    else:
        import pandas as pd

        with pd.option_context("display.max_rows", 200, "display.width", 160):
            print(table.to_string(index=False))
    left_out = table.attrs.get("left_out")
    if left_out:
        print(
            f"note: left out {', '.join(left_out)} (other output dims than the rows above); "
            f"add --var {' '.join(left_out)} for one row per step, or --aggregate mean "
            "(or last, ...) to summarize every output",
            file=sys.stderr,
        )
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .analysis.plot import DPI, plot_envelope
    from .store.zarr_store import open_ensemble

    ds = open_ensemble(args.store)
    if args.var not in ds.data_vars:
        msg = (
            f"no output {args.var!r} in {args.store}; outputs are {sorted(map(str, ds.data_vars))}"
        )
        raise ValueError(msg)
    over = None if args.over is None else tuple(args.over)
    ax = plot_envelope(ds[args.var], over=over, q=tuple(args.quantiles), method=args.method)
    ax.figure.savefig(args.output, dpi=DPI, bbox_inches="tight")
    plt.close(ax.figure)
    print(f"wrote {args.output}")
    return 0


COMMANDS = {
    "run": cmd_run,
    "resume": cmd_resume,
    "demo": cmd_demo,
    "info": cmd_info,
    "summary": cmd_summary,
    "plot": cmd_plot,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ensembles`` command."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("ensembles: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug or os.environ.get("ENSEMBLES_DEBUG"):
            raise
        print(f"ensembles: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

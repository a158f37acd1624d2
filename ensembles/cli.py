"""The ``ensembles`` command line: run, resume, demo, info, summary, plot.

Every command delegates to the Python API. Exit status: 0 done, 1 an error (one line on
stderr, ``--debug`` for the traceback), 2 a usage error, 3 a run or resume that finished
with failed members (``--allow-failures`` makes that 0), 130 interrupted, 141 output pipe
closed (``| head``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

__all__ = [
    "EXIT_ERROR",
    "EXIT_FAILED_MEMBERS",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PIPE_CLOSED",
    "EXIT_USAGE",
    "main",
]

#: Exit statuses of the ``ensembles`` command.
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2  # argparse's own
EXIT_FAILED_MEMBERS = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_PIPE_CLOSED = 141  # 128 + SIGPIPE, as a shell reports `cmd | head`

EXIT_CODES = f"""\
exit status:
  {EXIT_OK}    done (run/resume: every member ok)
  {EXIT_ERROR}    error: one line on stderr (--debug shows the traceback)
  {EXIT_USAGE}    usage error: bad command-line arguments
  {EXIT_FAILED_MEMBERS}    run/resume finished, but members failed (recorded in the store;
       see `ensembles info OUT.zarr --failed`); --allow-failures exits 0 instead
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C)
  {EXIT_PIPE_CLOSED}  the output pipe closed early (e.g. `| head`)
"""

SPEC_HELP = """\
A spec is a TOML (or JSON) file with four tables:
  [simulation]  what each member runs: function = "module:function", or
                command = [argv...], model = "module:Class", mesa_model = "module:Class"
  [design]      the parameters: [design.grid], [design.sample], [design.lhs],
                [design.sobol], [design.points], or product/concat of them
  [fixed]       values every member receives (optional)
  [run]         seeds (per design point), root_seed, batch_size, on_error, retries,
                timeout; an adaptive run: seeds = {initial = 16, max = 1024} (or
                samples = {...}) and until = {var = "M", halfwidth = 0.01}

A minimal spec (3 temperatures x 4 seeds = 12 members):

  [simulation]
  function = "ensembles.models.ising:simulate"
  [design.grid]
  T = [1.5, 2.0, 2.5]
  [fixed]
  L = 32
  n_sweeps = 2000
  [run]
  seeds = 4
  root_seed = 42

Details: docs/sweeps.md (designs), docs/simulations.md, docs/running.md,
docs/adaptive.md.
"""

#: One example per subcommand, shown at the end of its --help.
EXAMPLES = {
    "run": "example:\n  ensembles run spec.toml -o out.zarr\n",
    "resume": "example:\n  ensembles resume out.zarr --failed --retries 1\n",
    "demo": "example:\n  ensembles demo --out demo --samples 10 --seeds 2 --size 32\n",
    "info": "example:\n  ensembles info out.zarr --failed\n",
    "summary": (
        "example:\n  ensembles summary out.zarr --over seed --quantiles 0.05 0.5 0.95 "
        "-o summary.csv\n"
    ),
    "plot": "example:\n  ensembles plot out.zarr --var M --over seed -o envelope.png\n",
}


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the layout of descriptions and epilogs; adds "(default: X)" to options."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or default is None
            or default is False
            or default is argparse.SUPPRESS
            or not action.option_strings
        ):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        return f"{text} (default: {str(shown).replace('%', '%%')})"


def _add_scheduler_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("where to run")
    g.add_argument("--scheduler", metavar="ADDRESS", help="dask scheduler, e.g. tcp://host:8786")
    g.add_argument("--scheduler-file", metavar="PATH", help="scheduler file of a dask cluster")
    g.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="worker processes of the local pool (default: one per core)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")


def _add_failure_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-failures",
        action="store_true",
        help=f"exit 0 even when members failed (otherwise {EXIT_FAILED_MEMBERS})",
    )


def _add_method_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--method",
        default="linear",
        metavar="NAME",
        help="NumPy's quantile method: linear (default), hazen, weibull, median_unbiased, "
        "normal_unbiased, interpolated_inverted_cdf, inverted_cdf, averaged_inverted_cdf, "
        "closest_observation, lower, higher, midpoint, nearest",
    )


def _add_timeout_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="seconds a member may run before it is recorded as failed (timed out)",
    )


def _add_run_commands(sub: Any) -> None:
    """The commands that run members: run, resume, demo."""
    p = sub.add_parser("run", help="run a TOML/JSON spec into a Zarr store", description=SPEC_HELP)
    p.add_argument("spec", help="the run specification (.toml or .json; see above)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.zarr", help="store path or URL")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--overwrite", action="store_true", help="replace an existing store")
    how.add_argument(
        "--resume",
        action="store_true",
        help="finish or extend an existing store (only missing and new members run)",
    )
    p.add_argument("--batch-size", type=int, metavar="N", help="members per task")
    _add_timeout_option(p)
    p.add_argument("--force", action="store_true", help="break a dead writer's lease")
    _add_failure_options(p)
    _add_scheduler_options(p)

    p = sub.add_parser(
        "resume", help="finish a stored run: rerun members that are not ok (spec from the store)"
    )
    p.add_argument("store", metavar="OUT.zarr", help="store path or URL")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--failed", action="store_true", help="rerun only failed members")
    which.add_argument("--pending", action="store_true", help="run only pending members")
    p.add_argument("--retries", type=int, default=0, help="extra attempts per failing member")
    _add_timeout_option(p)
    p.add_argument("--force", action="store_true", help="break a dead writer's lease")
    _add_failure_options(p)
    p.add_argument(
        "--trust",
        action="store_true",
        help="run the store's recorded simulation without asking, though this user's "
        "ensembles did not write its spec (it runs whatever the store names)",
    )
    _add_scheduler_options(p)

    p = sub.add_parser("demo", help="run the Ising temperature ensemble and plot its envelope")
    p.add_argument("--out", default=".", metavar="DIR", help="directory for the store and PNG")
    p.add_argument("--samples", type=int, default=50, help="temperatures drawn around T0")
    p.add_argument("--seeds", type=int, default=4, help="seeds per temperature")
    p.add_argument("--size", type=int, default=100, metavar="L", help="lattice size L")
    p.add_argument("--n-sweeps", type=int, default=10_000, help="Monte Carlo sweeps per member")
    p.add_argument("--overwrite", action="store_true", help="replace an existing demo store")
    _add_scheduler_options(p)


def _add_info_command(sub: Any) -> None:
    """``ensembles info``: what a store holds, and which members failed."""
    p = sub.add_parser("info", help="describe a saved ensemble")
    p.add_argument("store", metavar="OUT.zarr")
    p.add_argument(
        "--failed",
        action="store_true",
        help="list every failed member: parameters, seed, member_seed, error (with --json: "
        "full messages)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ensembles",
        description="Run statistical ensembles and parameter sweeps of simulations.",
        epilog=f"`ensembles COMMAND --help` describes each command.\n\n{EXIT_CODES}",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    _add_run_commands(sub)
    _add_info_command(sub)

    _add_summary_command(sub)
    _add_plot_command(sub)

    for name, command in sub.choices.items():
        command.formatter_class = _HelpFormatter
        command.epilog = EXAMPLES[name]
        command.allow_abbrev = False  # `--q` is --quantiles, never a short --quiet
    return parser


def _add_summary_command(sub: Any) -> None:
    p = sub.add_parser("summary", help="per design point: mean, std, n and quantiles")
    p.add_argument("store", metavar="OUT.zarr")
    p.add_argument(
        "--over",
        nargs="+",
        default=["seed"],
        metavar="DIM",
        help="member dims to summarize over (default: seed)",
    )
    p.add_argument(
        "--quantiles",
        "--q",
        nargs="*",
        type=float,
        default=[0.025, 0.5, 0.975],
        metavar="Q",
        help="quantiles in [0, 1]",
    )
    p.add_argument("--var", nargs="+", metavar="NAME", help="outputs (default: all)")
    p.add_argument(
        "--aggregate",
        metavar="HOW",
        help="reduce each member's time series first: mean, median, last, ...",
    )
    _add_method_option(p)
    p.add_argument(
        "-o", "--output", metavar="FILE", help="write .csv, .parquet or .json (default: print)"
    )


def _add_plot_command(sub: Any) -> None:
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
        "--quantiles",
        "--q",
        nargs=2,
        type=float,
        default=[0.025, 0.975],
        metavar=("LO", "HI"),
        help="the band's quantiles",
    )
    _add_method_option(p)
    p.add_argument("-o", "--output", required=True, metavar="FILE.png", help="image file")


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
    if args.timeout is not None:
        options["timeout"] = args.timeout
    mode = "w" if args.overwrite else "resume" if args.resume else "w-"
    ensemble.to_zarr(
        args.output,
        mode=mode,
        force=args.force,
        progress=not args.quiet,
        **_client_kwargs(args),
        **options,
    )
    status = _status(args.output)
    print(_done_line(status, args.output))
    return _exit_status(status, args)


def _status(path: str) -> Any:
    """The status of every member (numpy), read from the store in one go (through the
    Dataset, dask would look for a scheduler, importing distributed: 0.3 s)."""
    from .store.zarr_store import EnsembleStore

    return EnsembleStore(path).status()


def _done_line(status: Any, where: str) -> str:
    from .layout import FAILED, OK, SKIPPED

    ok, failed = int((status == OK).sum()), int((status == FAILED).sum())
    skipped = int((status == SKIPPED).sum())
    failed_txt = f", {failed} failed (see `ensembles info {where} --failed`)" if failed else ""
    if skipped:
        failed_txt += f" ({skipped} not run: the adaptive rule needed no more)"
    return f"{where}: {ok} of {status.size - skipped} members ok{failed_txt}"


def _exit_status(status: Any, args: argparse.Namespace) -> int:
    """EXIT_FAILED_MEMBERS when the store holds failed members (unless --allow-failures)."""
    from .layout import FAILED

    if args.allow_failures or not (status == FAILED).any():
        return EXIT_OK
    return EXIT_FAILED_MEMBERS


def cmd_resume(args: argparse.Namespace) -> int:
    from .ensemble import Ensemble
    from .errors import StoreError
    from .store import trust
    from .store.zarr_store import EnsembleStore

    text = EnsembleStore(args.store).spec_text()  # codecs checked; nothing imported yet
    try:
        spec = json.loads(text)
    except ValueError as exc:
        msg = f"the run spec recorded in {args.store!r} is not valid JSON ({exc})"
        raise StoreError(msg) from None
    if not (args.trust or trust.is_known(text)):
        print(trust.describe_run(spec, args.store), file=sys.stderr)
        why = "ensembles did not write this spec as this user on this machine"
        if not sys.stdin.isatty():
            msg = (
                f"{why}, so resuming {args.store} needs --trust to run it (or run your own "
                f"spec against it: ensembles run SPEC.toml -o {args.store} --resume)"
            )
            raise StoreError(msg)
        answer = input(f"{why}. Run it? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            print("ensembles: nothing was run", file=sys.stderr)
            return 1
    ensemble = Ensemble.from_spec(spec)
    only = "failed" if args.failed else "pending" if args.pending else None
    ensemble.to_zarr(
        args.store,
        mode="resume",
        only=only,
        force=args.force,
        retries=args.retries,
        timeout=args.timeout,
        progress=not args.quiet,
        **_client_kwargs(args),
    )
    status = _status(args.store)
    print(_done_line(status, args.store))
    return _exit_status(status, args)


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
    from .describe import describe, format_failed_members, format_info, plain

    info = describe(args.store)
    report, table = "", None
    if args.failed or info["members"]["failed"]:
        from .analysis.failures import failure_report, failures
        from .store.zarr_store import open_ensemble

        ds = open_ensemble(args.store)
        if args.failed:
            table = failures(ds)
        elif not args.json:
            report = failure_report(ds)
    if args.json:
        if table is not None:
            info["failed_members"] = [
                {str(k): plain(v) for k, v in row.items()} for row in table.to_dict("records")
            ]
        print(json.dumps(info, indent=2, default=str))
    elif table is not None:
        print(format_failed_members(table))
    else:
        print(format_info(info, report))
    return EXIT_OK


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
    """Entry point of the ``ensembles`` command; returns its exit status (see EXIT_CODES).

    Called without ``argv`` (the command line itself), it owns the process: after an
    error it has reported in one line, connections torn down at exit (dask clients,
    clusters) stay quiet. Called with ``argv`` (from Python), it changes no global state.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    debug = args.debug or bool(os.environ.get("ENSEMBLES_DEBUG"))
    try:
        status = COMMANDS[args.command](args)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return status
    except KeyboardInterrupt:
        print("ensembles: interrupted", file=sys.stderr)
        status = EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_PIPE_CLOSED
    except Exception as exc:
        if debug:
            raise
        print(f"ensembles: error: {exc}", file=sys.stderr)
        status = EXIT_ERROR
    if argv is None and not debug:
        _quiet_shutdown()
    return status


def _quiet_shutdown() -> None:
    """No more log records or "Exception ignored in ..." tracebacks from this process.

    After a run stopped with an error (or Ctrl-C), the interpreter's exit closes dask
    clients and the embedded cluster while connections are half torn down; distributed
    then logs ``CommClosedError`` tracebacks and finalizers time out, after the one line
    that said what went wrong. ``--debug`` keeps them.
    """
    import logging

    logging.disable(logging.CRITICAL)
    sys.unraisablehook = lambda unraisable: None


def _silence_stdout() -> None:
    """Point stdout at /dev/null: the reader is gone, and Python flushes stdout at exit.

    This is the handling the Python documentation recommends for SIGPIPE: no traceback,
    no "Broken pipe" message, and exit status 128 + SIGPIPE like a command the pipe
    killed.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout without a file descriptor (tests, notebooks)
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

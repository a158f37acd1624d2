"""Markdown from the benchmarks' raw JSON results: medians, ranges, per-round ratios, targets.

Every figure on the benchmark pages comes from here: ``render(payload)`` turns one results
file into its tables, checks and targets, and ``update_doc`` puts the text between the
page's ``<!-- BEGIN bench:NAME -->`` and ``<!-- END bench:NAME -->`` markers.

Run ``python benchmarks/_report.py benchmarks/results/peers_cpu.json`` to print one file.
"""

from __future__ import annotations

import json
import operator
import re
import statistics
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}


def values(payload: Mapping[str, Any], case: str, metric: str) -> dict[int, float]:
    """``{round: value}`` of one case's metric (runs that failed or lack it left out).

    A run marked ``may_fail`` counts whatever its exit status: its failure is the result.
    """
    return {
        r["round"]: float(r[metric])
        for r in payload["runs"]
        if r["case"] == case
        and (r.get("rc") == 0 or r.get("may_fail"))
        and r.get(metric) is not None
    }


def ratios(
    payload: Mapping[str, Any], case: str, baseline: str, metric: str, kind: str
) -> list[float]:
    """Per-round ratios: ``baseline / case`` (``speedup``) or ``case / baseline``."""
    mine, base = values(payload, case, metric), values(payload, baseline, metric)
    both = sorted(set(mine) & set(base))
    if kind == "speedup":
        return [base[r] / mine[r] for r in both if mine[r] > 0]
    return [mine[r] / base[r] for r in both if base[r] > 0]


def stat(xs: Iterable[float], fmt: str = ".3g", unit: str = "") -> str:
    """``median (min-max)`` of the values, or the one value; ``n/a`` when there are none."""
    xs = sorted(xs)
    if not xs:
        return "n/a"
    med = f"{statistics.median(xs):{fmt}}{unit}"
    if len(xs) == 1 or xs[0] == xs[-1]:
        return med
    return f"{med} ({xs[0]:{fmt}}-{xs[-1]:{fmt}}{unit})"


def table(payload: Mapping[str, Any], spec: Mapping[str, Any]) -> str:
    """One table: a row per case, a column per metric, and per-round ratios.

    ``spec["ratios"]`` lists ratio columns; each names its ``baseline`` (a case, or a dict
    ``{case: baseline case}``), ``metric`` and ``kind`` (see :func:`ratios`).
    """
    labels = payload.get("labels", {})
    cols, extra = spec["columns"], spec.get("ratios", [])
    head = ["", *(c["label"] for c in cols), *(r["label"] for r in extra)]
    lines = [
        f"**{spec['title']}**",
        "",
        "| " + " | ".join(head) + " |",
        "|---|" + "---:|" * (len(head) - 1),
    ]
    for case in spec["cases"]:
        cells = [labels.get(case, case)]
        for c in cols:
            scale = c.get("scale", 1.0)
            xs = [v * scale for v in values(payload, case, c["metric"]).values()]
            cells.append(stat(xs, c.get("fmt", ".3g")))
        for r in extra:
            base = r["baseline"] if isinstance(r["baseline"], str) else r["baseline"].get(case)
            if base is None:
                cells.append("")
            elif base == case:
                cells.append("1 (baseline)")
            else:
                cells.append(stat(ratios(payload, case, base, r["metric"], r["kind"]), ".2f", "x"))
        lines.append("| " + " | ".join(cells) + " |")
    if spec.get("note"):
        lines += ["", spec["note"]]
    return "\n".join(lines)


def target_result(payload: Mapping[str, Any], t: Mapping[str, Any]) -> tuple[str, bool | None]:
    """The measured figure of a target and whether it is met at the median (None: no data)."""
    if t["kind"] == "value":
        xs = list(values(payload, t["case"], t["metric"]).values())
        unit = t.get("unit", "")
        fmt = t.get("fmt", ".3g")
    else:
        xs = ratios(payload, t["case"], t["baseline"], t["metric"], t["kind"])
        unit, fmt = "x", ".2f"
    if not xs:
        return "n/a", None
    met = _OPS[t["op"]](statistics.median(xs), t["threshold"])
    return stat(xs, fmt, unit), met


def targets(payload: Mapping[str, Any], source: str = "") -> list[list[str]]:
    """Rows ``[target, measured, wanted, verdict(, page)]`` of the payload's targets."""
    rows = []
    suffix = " (one CPU hog beside it)" if payload.get("busy") else ""
    for t in payload.get("targets", []):
        measured, met = target_result(payload, t)
        unit = "x" if t["kind"] != "value" else t.get("unit", "")
        wanted = f"{t['op']} {t['threshold']:g}{unit}"
        if met is None:
            verdict = "not measured"
        else:
            verdict = "met" if met else f"not met: {t.get('reason', 'no reason given')}"
        row = [t["label"] + suffix, measured, wanted, verdict]
        if source:
            row.append(source)
        rows.append(row)
    return rows


def header(payload: Mapping[str, Any], final: bool) -> str:
    m = payload["machine"]
    vers = ", ".join(f"{k} {v}" for k, v in payload["versions"].items())
    rounds = max((r["round"] for r in payload["runs"]), default=-1) + 1
    status = (
        ""
        if final
        else (
            "*Provisional: measured on a shared machine; the final figures come from a rerun on "
            "a quiet one.* "
        )
    )
    load = "/".join(f"{x:g}" for x in m["load_start"]) + " at start, "
    load += "/".join(f"{x:g}" for x in m["load_end"]) + " at end"
    return (
        f"{status}Measured {payload['started']} with `{payload['command']}`"
        f"{' (one CPU hog beside it)' if payload.get('busy') else ''}: {m['cpu']}, "
        f"{m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}; load average {load}; "
        f"{rounds} interleaved round(s), each run a fresh process; figures are medians "
        f"(range over rounds in brackets). Versions: {vers}."
    )


def render(payload: Mapping[str, Any], final: bool = False) -> str:
    """The markdown of one results file: header, tables, checks, targets, notes."""
    parts = [header(payload, final)]
    parts += [table(payload, spec) for spec in payload.get("tables", [])]
    if payload.get("checks"):
        lines = ["| correctness check | result |", "|---|---|"]
        for c in payload["checks"]:
            ok = "same" if c["ok"] else "DIFFERENT"
            lines.append(f"| {c['what']} | {ok}{': ' + c['detail'] if c['detail'] else ''} |")
        parts.append("\n".join(lines))
    rows = targets(payload)
    if rows:
        lines = ["| target | measured | wanted | |", "|---|---:|---:|---|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        parts.append("\n".join(lines))
    parts += list(payload.get("notes", []))
    return "\n\n".join(parts)


def summary(
    payloads: Mapping[str, Mapping[str, Any]], pages: Mapping[str, str], final: bool = False
) -> str:
    """Every target of every results file in one table, with the page it comes from."""
    dates = sorted(p["started"] for p in payloads.values())
    when = f"{dates[0]} to {dates[-1]}" if dates else "never"
    status = "" if final else "*Provisional: measured on a shared machine.* "
    lines = [
        f"{status}Measured {when}; medians over interleaved rounds (range in brackets), "
        "each figure printed by the script named on its page.",
        "",
        "| target | measured | wanted | | page |",
        "|---|---:|---:|---|---|",
    ]
    for name, payload in payloads.items():
        page = pages.get(name.removesuffix("-busy"), "")
        for row in targets(payload, f"[{page.removesuffix('.md')}]({page})" if page else name):
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def update_doc(path: Path, name: str, text: str) -> bool:
    """Replace the text between the ``bench:name`` markers of ``path``; False if absent."""
    doc = path.read_text()
    begin, end = f"<!-- BEGIN bench:{name} -->", f"<!-- END bench:{name} -->"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(doc):
        return False
    new = pattern.sub(lambda _: f"{begin}\n{text.strip()}\n{end}", doc)
    path.write_text(new)
    return True


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(render(json.loads(Path(arg).read_text())))
        print()

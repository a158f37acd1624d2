"""docs/adaptive.md runs as written: its Python blocks, in order, print what the page shows."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "adaptive.md"
FENCE = re.compile(r"```(\w*)\n(.*?)```", re.DOTALL)


def _blocks() -> list[tuple[str, str, str | None]]:
    """Each Python block with the text block right after it (its shown output), if any."""
    text = DOC.read_text()
    found = [(m.group(1), m.group(2), m.start(), m.end()) for m in FENCE.finditer(text)]
    blocks = []
    for i, (lang, body, _, end) in enumerate(found):
        if lang != "python":
            continue
        shown = None
        if i + 1 < len(found) and found[i + 1][0] == "text":
            between = text[end : found[i + 1][2]]
            if not between.strip():
                shown = found[i + 1][1]
        blocks.append((body, shown, f"block {i}"))
    return blocks


def _matches(line: str, shown: str) -> bool:
    """``line`` is one of the shown lines, where ``...`` in the page stands for anything."""
    for candidate in shown.splitlines():
        pattern = ".*".join(re.escape(part) for part in candidate.strip().split("..."))
        if re.fullmatch(pattern, line.strip()):
            return True
    return False


def test_the_page_runs_and_prints_what_it_shows(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "adaptive_docs"}
    blocks = _blocks()
    assert len(blocks) >= 8
    for body, shown, where in blocks:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(body, f"{DOC.name} {where}", "exec"), namespace)
        if shown is None:
            continue
        for line in out.getvalue().splitlines():
            assert _matches(line, shown), f"{where} printed {line!r}, the page shows:\n{shown}"
    assert (tmp_path / "ising_adaptive.png").stat().st_size > 0
    assert (tmp_path / "ising_sobol.zarr").is_dir()

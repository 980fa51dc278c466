"""python -m sweep.compare DIR_A DIR_B [out=DIR] [tolerance=N]

Did two runs make the same images? (Before and after a torch or diffusers upgrade, fp16 against bf16, one GPU
against another.) Cells are paired by cell_id; a multirun sweep dir, whose cell_ids repeat per job, pairs
them by (job, cell_id), the job named by its own command-line overrides minus those every job of that sweep
shares, so `-m guidance_scale=3,7` pairs with `-m guidance_scale=3,7 model.dtype=bfloat16`. Prints every
difference in model, dtype, scheduler, options, batch size and software/GPU columns (`dtype: float32 ->
bfloat16`), the cells found in only one run, and for shared cells the max and mean absolute pixel difference
(0-255 per RGB channel) and SSIM. Writes into `out` (default DIR_B/compare_<name of DIR_A>):
compare.csv (one row per cell: cell_id, job, in_a, in_b, max_abs_diff, mean_abs_diff, ssim, psnr, within, note)
and compare.png (the most different cells: A | B | amplified difference map).

Exit 0 when every shared cell is within `tolerance` (max abs difference in 0-255 levels; default 0: pixel-
identical), 1 otherwise or when no cell is shared, 2 on bad input (one line). Reads PNGs and results.csv only.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

USAGE = "python -m sweep.compare DIR_A DIR_B [out=DIR] [tolerance=N]"
OPTIONS = ("out", "tolerance")
# Columns that say how a run was made, not what a cell is: every difference is named.
MADE_WITH = ("sweep", "model", "device", "dtype", "scheduler", "options", "batch_size", "threads", "torch", "diffusers",
             "transformers", "gpu")
COLUMNS = ["cell_id", "job", "in_a", "in_b", "max_abs_diff", "mean_abs_diff", "ssim", "psnr", "within", "note",
           "image_a", "image_b"]
CSV, SHEET = "compare.csv", "compare.png"
LISTED = 10  # cells named per "only in" line; the CSV has all


@dataclass
class Comparison:
    """The outcome: one table row per cell, the named differences, and what was written."""

    dir_a: Path
    dir_b: Path
    table: Any  # pandas.DataFrame with COLUMNS
    differences: list[str]
    tolerance: float
    out: Path
    csv: Path | None = None
    sheet: Path | None = None
    counts: dict[str, int] = field(default_factory=dict)
    moved_aside: list[Path] = field(default_factory=list)  # files in `out` this tool did not write

    @property
    def shared(self) -> Any:
        return self.table[self.table["in_a"] & self.table["in_b"]]

    @property
    def same(self) -> bool:
        shared = self.shared
        return len(shared) > 0 and bool(shared["within"].all())

    @property
    def exit_code(self) -> int:
        return 0 if self.same else 1

    def lines(self) -> list[str]:
        t = self.table
        only_a, only_b = t[t["in_a"] & ~t["in_b"]], t[~t["in_a"] & t["in_b"]]
        shared = self.shared
        out = [f"A: {self.dir_a} ({self.counts.get('a', 0)} cells)",
               f"B: {self.dir_b} ({self.counts.get('b', 0)} cells)"]
        out += [f"differs: {d}" for d in self.differences] or [
            "differs: nothing in " + ", ".join(MADE_WITH)]
        scored = shared[shared["max_abs_diff"].notna()]
        beyond = shared[~shared["within"].astype(bool)]
        summary = f"shared: {len(shared)} cells, {len(beyond)} beyond tolerance {self.tolerance:g}"
        if len(scored) and scored["max_abs_diff"].max() > 0:
            worst = scored.sort_values(["mean_abs_diff", "max_abs_diff"], ascending=False).iloc[0]
            summary += (f"; max abs diff {int(scored['max_abs_diff'].max())}, mean abs diff up to "
                        f"{scored['mean_abs_diff'].max():.3f}, SSIM down to {scored['ssim'].min():.4f}"
                        f" (worst: {_name(worst)})")
        out.append(summary)
        unscored = shared[shared["note"] != ""]
        for note, group in unscored.groupby("note", sort=False):
            out.append(f"not compared ({note}): {len(group)}: {_listing(group)}")
        for side, rows in (("A", only_a), ("B", only_b)):
            if len(rows):
                out.append(f"only in {side}: {len(rows)}: {_listing(rows)}")
        if self.moved_aside:
            out.append(f"moved aside (not written by sweep.compare): {', '.join(p.name for p in self.moved_aside)} "
                       f"-> {self.moved_aside[0].parent}")
        out += [f"table: {self.csv}"] if self.csv else []
        out += [f"sheet: {self.sheet}"] if self.sheet else []
        if self.same:
            out.append(f"SAME: every shared cell within tolerance {self.tolerance:g}")
        elif not len(shared):
            out.append("DIFFERENT: the runs share no cell")
        else:
            out.append(f"DIFFERENT: {len(beyond)} of {len(shared)} shared cells beyond tolerance {self.tolerance:g}")
        return out


def _name(row: Any) -> str:
    return f"{row['job']} / {row['cell_id']}" if row["job"] else str(row["cell_id"])


def _listing(rows: Any) -> str:
    names = [_name(r) for _, r in rows.head(LISTED).iterrows()]
    more = len(rows) - len(names)
    return ", ".join(names) + (f" ... and {more} more (see the table)" if more > 0 else "")


# --- input ------------------------------------------------------------------------------------------------


def parse(argv: list[str]) -> tuple[str, str, dict[str, str]]:
    """Two directories and key=value options; raises ReportError."""
    from sweep.report.result import ReportError

    dirs: list[str] = []
    options: dict[str, str] = {}
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key.strip() in OPTIONS:
            options[key.strip()] = value
        elif sep and not os.path.exists(arg) and "/" not in arg:
            raise ReportError(key, value, "DIR_A DIR_B and the options " + ", ".join(f"{o}=" for o in OPTIONS))
        else:
            dirs.append(arg)
    if len(dirs) != 2:
        raise ReportError("DIR", " ".join(dirs), f"two run directories; usage: {USAGE}")
    return dirs[0], dirs[1], options


def tolerance_of(text: Any) -> float:
    from sweep.report.result import ReportError

    try:
        value = float(str(text).strip())
    except ValueError:
        value = float("nan")
    if not (0 <= value <= 255):
        raise ReportError("tolerance", text, "a number from 0 to 255: the largest allowed absolute difference "
                          "of a pixel channel (0 = pixel-identical)")
    return value


def _load(path: str | Path, key: str) -> Any:
    from sweep.report.data import load_run
    from sweep.report.result import ReportError

    try:
        return load_run(path)
    except ReportError as exc:
        raise ReportError(key, path, exc.allowed) from None


def _tokens(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:  # an unbalanced quote inside a value: plain words still tell jobs apart
        return text.split()


def job_keys(rows: Any) -> list[str]:
    """Each row's job, named by its overrides minus those every job shares ('' outside a multirun)."""
    if "job" not in rows or not any(rows["job"]):
        return [""] * len(rows)
    overrides = rows["overrides"] if "overrides" in rows else [""] * len(rows)
    tokens = {text: _tokens(text) for text in set(overrides)}
    common = set.intersection(*(set(t) for t in tokens.values())) if tokens else set()
    keys = []
    for job, text in zip(rows["job"], overrides, strict=True):
        own = " ".join(t for t in tokens[text] if t not in common)
        keys.append(own or f"job {job}")
    return keys


# --- comparing --------------------------------------------------------------------------------------------


def _pairs(a: Any, b: Any) -> list[tuple[str, str, Any, Any]]:
    """(cell_id, job, row index in A or None, row index in B or None), A's order first."""
    key_a, key_b = job_keys(a), job_keys(b)
    by_id: dict[str, tuple[list[tuple[str, Any]], list[tuple[str, Any]]]] = {}
    for index, cid, key in zip(a.index, a["cell_id"], key_a, strict=True):
        by_id.setdefault(cid, ([], []))[0].append((key, index))
    for index, cid, key in zip(b.index, b["cell_id"], key_b, strict=True):
        by_id.setdefault(cid, ([], []))[1].append((key, index))
    pairs = []
    for cid, (in_a, in_b) in by_id.items():
        if len(in_a) <= 1 and len(in_b) <= 1:
            # One each: the same cell, even when one side is a multirun and the other a run dir.
            key = next((k for k, _ in in_a + in_b if k), "")
            pairs.append((cid, key, in_a[0][1] if in_a else None, in_b[0][1] if in_b else None))
            continue
        b_keys = dict(in_b)
        for key, index in in_a:
            pairs.append((cid, key, index, b_keys.pop(key, None)))
        pairs += [(cid, key, None, index) for key, index in b_keys.items()]
    return pairs


def _score(run_a: Any, run_b: Any, ia: Any, ib: Any) -> dict[str, Any]:
    from sweep.report import similarity as sim

    ra, rb = run_a.cells.loc[ia], run_b.cells.loc[ib]
    failed = [s for s, r in (("A", ra), ("B", rb)) if r["status"] != "ok"]
    if failed:
        both = len(failed) == 2
        return {"note": "failed in A and B" if both else f"failed in {failed[0]}", "within": both}
    pa = sim.load(run_a.run_dir / ra["image"]) if ra["image"] else None
    pb = sim.load(run_b.run_dir / rb["image"]) if rb["image"] else None
    if pa is None or pb is None:
        return {"note": "no image in " + ("A" if pa is None else "B"), "within": False}
    if not sim.same_size(pa, pb):
        return {"note": f"size differs ({pa.size[0]}x{pa.size[1]} vs {pb.size[0]}x{pb.size[1]})", "within": False}
    s = sim.scores(pa, pb)
    return {"max_abs_diff": s.max_abs_diff, "mean_abs_diff": round(s.mean_abs_diff, 6), "ssim": round(s.ssim, 6),
            "psnr": round(s.psnr, 3), "note": ""}


def differences(a: Any, b: Any) -> list[str]:
    """'dtype: float32 -> bfloat16' for every made-with column whose values differ between the runs."""
    found = []
    for column in MADE_WITH:
        va = list(dict.fromkeys(v for v in a.get(column, []) if v))
        vb = list(dict.fromkeys(v for v in b.get(column, []) if v))
        if set(va) != set(vb):
            found.append(f"{column}: {'/'.join(va) or '(none)'} -> {'/'.join(vb) or '(none)'}")
    return found


def _made_with(rows: Any, found: list[str]) -> list[str]:
    """This run's values of the columns that differ ('dtype float32'), for the sheet's column headers."""
    columns = [d.split(":", 1)[0] for d in found]
    return [f"{c} {'/'.join(dict.fromkeys(v for v in rows.get(c, []) if v)) or '(none)'}" for c in columns]


def compare(dir_a: str | Path, dir_b: str | Path, out: str | Path | None = None,
            tolerance: float | str = 0) -> Comparison:
    """Compare two run dirs (or multirun sweep dirs); writes compare.csv and compare.png into `out`."""
    import pandas as pd

    from sweep.report import similarity as sim
    from sweep.report.atomic import save_csv
    from sweep.report.diffsheet import write_diff_sheet
    from sweep.report.result import ReportError
    from sweep.report.sheets import safe

    tol = tolerance_of(tolerance)
    run_a, run_b = _load(dir_a, "DIR_A"), _load(dir_b, "DIR_B")
    target = Path(out) if out not in (None, "") else run_b.run_dir / f"compare_{safe(run_a.run_dir.resolve().name)}"
    if target.exists() and not target.is_dir():
        raise ReportError("out", str(target), "a directory (or a path to create one at)")
    from sweep.rundir.guard import check_links

    if out in (None, ""):  # written into DIR_B: nothing through a link there (compare_X -> elsewhere)
        check_links(run_b.run_dir, "DIR_B")
    check_links(target, "out")  # previous/ (where foreign files go) or compare.csv as links
    a = run_a.cells[run_a.cells["status"] != "missing"]
    b = run_b.cells[run_b.cells["status"] != "missing"]
    pairs = _pairs(a, b)
    both = [(ia, ib) for _, _, ia, ib in pairs if ia is not None and ib is not None]
    scored = dict(zip(both, sim.thread_map(lambda p: _score(run_a, run_b, *p), both), strict=True))
    rows = []
    for cid, key, ia, ib in pairs:
        found = scored.get((ia, ib), {}) if ia is not None and ib is not None else {}
        within = found.get("within")
        if within is None:
            within = ia is not None and ib is not None and found.get("max_abs_diff", 256) <= tol
        rows.append({"cell_id": cid, "job": key, "in_a": ia is not None, "in_b": ib is not None,
                     "max_abs_diff": found.get("max_abs_diff"), "mean_abs_diff": found.get("mean_abs_diff"),
                     "ssim": found.get("ssim"), "psnr": found.get("psnr"),
                     "within": bool(within) if ia is not None and ib is not None else None,
                     "note": found.get("note", ""),
                     "image_a": a.at[ia, "image"] if ia is not None else "",
                     "image_b": b.at[ib, "image"] if ib is not None else ""})
    table = pd.DataFrame(rows, columns=COLUMNS)
    table["max_abs_diff"] = pd.array(table["max_abs_diff"], dtype="Int64")
    for column in ("mean_abs_diff", "ssim", "psnr"):
        table[column] = pd.to_numeric(table[column])
    result = Comparison(run_a.run_dir, run_b.run_dir, table, differences(a, b), tol, target,
                        counts={"a": len(a), "b": len(b)})
    result.moved_aside = _set_aside_foreign(target)
    result.csv = save_csv(table, target / CSV)
    title = [f"A: {run_a.run_dir}", f"B: {run_b.run_dir}"] + [f"differs: {d}" for d in result.differences]
    names = tuple(f"{side}: {run.run_dir.name}" + "".join(f" · {n}" for n in _made_with(rows, result.differences))
                  for side, run, rows in (("A", run_a, a), ("B", run_b, b)))
    result.sheet = write_diff_sheet(run_a, run_b, table, title, target / SHEET, headers=names)
    return result


def _ours(path: Path) -> bool:
    """compare.csv or compare.png as this tool writes them (the csv's header, the png's text chunk)."""
    from sweep.report.diffsheet import is_ours

    if path.name == SHEET:
        return is_ours(path)
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            return handle.readline().strip() == ",".join(COLUMNS)
    except (OSError, UnicodeDecodeError):
        return False


def _set_aside_foreign(target: Path) -> list[Path]:
    """Move a compare.csv / compare.png this tool did not write out of the way (into out/previous/<time>/)
    before writing its own: a user's files of those names are never overwritten or deleted."""
    from sweep.rundir.guard import previous_folder

    foreign = [target / name for name in (CSV, SHEET)
               if ((target / name).exists() or (target / name).is_symlink()) and not _ours(target / name)]
    if not foreign:
        return []
    folder = previous_folder(target)
    moved = []
    for path in foreign:
        os.replace(path, folder / path.name)
        moved.append(folder / path.name)
    return moved


def main(argv: list[str] | None = None) -> int:
    from sweep.cli.commands import run_command

    def run(args: list[str]) -> int:
        dir_a, dir_b, options = parse(args)
        result = compare(dir_a, dir_b, out=options.get("out"), tolerance=options.get("tolerance", 0))
        from sweep.safe_log import escape_controls

        for line in result.lines():  # values from two run dirs: escaped, each line one line
            print(escape_controls(line))
        return result.exit_code

    return run_command(argv, __doc__, run, hint="the runs compared are untouched: run the same command again")


if __name__ == "__main__":
    sys.exit(main())

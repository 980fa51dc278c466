"""Hydra multirun: jobs share one pipeline, the merge callback writes one table and one comparison, a failed
job is recorded without stopping the merge; the same through the submitit launcher."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import require, run_cli
from sweep.cli.multirun import merge, swept_keys
from sweep.rundir.results import COLUMNS

TINY = ("model=tiny", "width=64", "sweep.grid.num_inference_steps=[1,2]")


def read(path):
    return pd.read_csv(path, keep_default_na=False, dtype=str)


def job_dirs(sweep_dir):
    return sorted(p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit())


@pytest.fixture(scope="module")
def guidance_multirun(tmp_path_factory):
    """2 guidance values x 2 heights, one of them invalid: 2 good jobs and 2 failed ones, in one process."""
    work = tmp_path_factory.mktemp("multirun")
    sweep_dir = work / "sweep"
    # `-m` between overrides, as Hydra users type it (argparse alone refuses overrides on both sides of it).
    result = run_cli("sweep=steps_10_to_90", *TINY, "-m", "height=64,100", "guidance_scale=3,7",
                     f"hydra.sweep.dir={sweep_dir}", cwd=work)
    return result, sweep_dir


@pytest.mark.slow
def test_jobs_in_one_process_load_the_pipeline_once(guidance_multirun):
    result, sweep_dir = guidance_multirun
    statuses = [json.loads((d / "status.json").read_text()) for d in job_dirs(sweep_dir)]
    made = [s for s in statuses if "pid" in s]
    assert len(made) == 2, result.stderr
    assert len({s["pid"] for s in made}) == 1  # one process ran both jobs...
    assert [s["pipeline_loads"] for s in made] == [1, 1]  # ...and built the pipeline once


@pytest.mark.slow
def test_the_whole_work_is_printed_before_the_first_job(guidance_multirun):
    result, _ = guidance_multirun
    output = result.stdout + result.stderr
    estimate = output.index("multirun: 4 jobs (2 with bad input), 4 images, 6 denoising steps in all")
    assert estimate < output.index("#0 :")


@pytest.mark.slow
def test_random_seeds_are_drawn_once_for_every_job(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_cli("-m", "sweep=seed_random", *TINY, "height=64", "prompt='a red fox','a blue fox'",
                     f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    merged = read(sweep_dir / "results.csv")
    by_prompt = merged.groupby("prompt")["seed"].apply(set)
    assert len(by_prompt) == 2 and by_prompt.iloc[0] == by_prompt.iloc[1] and len(by_prompt.iloc[0]) == 3


@pytest.mark.slow
def test_merged_results_hold_every_image_of_every_job_once(guidance_multirun):
    _, sweep_dir = guidance_multirun
    merged = read(sweep_dir / "results.csv")
    assert list(merged.columns[:1]) == ["job"] and "overrides" in merged.columns
    assert set(COLUMNS) <= set(merged.columns)
    per_job = []
    for job_dir in job_dirs(sweep_dir):
        if (job_dir / "results.csv").is_file():
            per_job += [(job_dir.name, cid) for cid in read(job_dir / "results.csv")["cell_id"]]
    assert len(per_job) == 4
    # Every image of every job, none missing, none twice.
    assert sorted(zip(merged["job"], merged["cell_id"], strict=True)) == sorted(per_job)
    assert set(merged["guidance_scale"].astype(float)) == {3.0, 7.0}
    assert set(merged["model"]) == {"tiny"} and set(merged["sweep"]) == {"steps_10_to_90"}
    for _, row in merged.iterrows():
        assert f"guidance_scale={float(row['guidance_scale']):g}" in row["overrides"]
        assert (sweep_dir / row["image"]).is_file()  # image paths are relative to the sweep dir


@pytest.mark.slow
def test_merged_sheet_puts_the_swept_key_on_an_axis(guidance_multirun):
    _, sweep_dir = guidance_multirun
    status = json.loads((sweep_dir / "status.json").read_text())
    assert "guidance_scale" in status["swept"]
    assert status["layouts"] == ["rows=guidance_scale cols=num_inference_steps"]
    assert [p for p in status["sheets"] if "rows-cfg" in p]
    assert all((sweep_dir / p).is_file() for p in status["sheets"])
    assert (sweep_dir / "summary.csv").is_file()


@pytest.mark.slow
def test_a_failed_job_is_recorded_and_the_others_still_merge(guidance_multirun):
    result, sweep_dir = guidance_multirun
    assert result.returncode == 2  # bad input in some job: the command fails, after every job ran
    jobs = read(sweep_dir / "jobs.csv")
    assert len(jobs) == 4
    failed = jobs[jobs["status"] != "ok"]
    assert all("height=100" in o for o in failed["overrides"])
    assert set(failed["status"]) == {"error"}
    assert all("height: got 100" in e for e in failed["error"])
    assert set(jobs[jobs["status"] == "ok"]["images"]) == {"2"}
    status = json.loads((sweep_dir / "status.json").read_text())
    assert status["images"] == 4 and len(status["failed_jobs"]) == 2
    assert "FAILED job" in result.stdout + result.stderr


@pytest.mark.slow
def test_multirun_over_sweeps_merges_into_one_sweep_dir(tmp_path):
    result = run_cli("-m", "sweep=seed_fixed,guidance_2_to_10", "model=tiny", "height=64", "width=64",
                     "num_inference_steps=1", "sweep.grid.repeat=1", "sweep.grid.guidance_scale=[1]",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # Each job resolves hydra.sweep.dir with its own sweep name: the callback pins one dir for all.
    (sweep_dir,) = (tmp_path / "multirun").glob("*/*")
    assert sweep_dir.parent.name == "sweeps"
    merged = read(sweep_dir / "results.csv")
    assert sorted(merged["sweep"]) == ["guidance_2_to_10", "seed_fixed"]
    assert len(json.loads((sweep_dir / "status.json").read_text())["sheets"]) == 2  # one per sweep


@pytest.mark.slow
def test_submitit_local_runs_jobs_in_processes_and_merges(tmp_path):
    try:
        import hydra_plugins.hydra_submitit_launcher  # noqa: F401
    except ImportError:
        require(False, "the submitit launcher", "pip install -e '.[test]'")
    sweep_dir = tmp_path / "sweep"
    result = run_cli("-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10",
                     "sweep=steps_10_to_90", *TINY, "height=64", "guidance_scale=3,7",
                     f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    jobs = read(sweep_dir / "jobs.csv")
    assert list(jobs["status"]) == ["ok", "ok"]
    merged = read(sweep_dir / "results.csv")
    expected = {(str(g), s) for g in (3, 7) for s in ("1", "2")}
    got = [(f"{float(g):g}", s) for g, s in zip(merged["guidance_scale"], merged["num_inference_steps"],
                                                 strict=True)]
    assert sorted(got) == sorted(expected)  # every cell of both jobs, once
    assert all((sweep_dir / image).is_file() for image in merged["image"])
    status = json.loads((sweep_dir / "status.json").read_text())
    assert status["layouts"] == ["rows=guidance_scale cols=num_inference_steps"]


# --- the merge on fabricated job dirs (no model, fast) ---------------------------------------------------


def fake_job(sweep_dir, num, overrides, rows, status):
    job = sweep_dir / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (job / ".hydra" / "hydra.yaml").write_text(f"hydra:\n  job:\n    num: {num}\n")
    table = pd.DataFrame([{c: r.get(c, "") for c in COLUMNS} for r in rows], columns=COLUMNS)
    table.to_csv(job / "results.csv", index=False)
    if status is not None:
        (job / "status.json").write_text(json.dumps(status))


def row(cell_id, **values):
    return {"cell_id": cell_id, "status": "ok", "seed": 1, "num_inference_steps": 2, "height": 64,
            "width": 64, "model": "tiny", "sweep": "s", "prompt": "p", "image": f"images/{cell_id}.png",
            **values}


def test_merge_records_unfinished_jobs_and_adds_swept_keys_that_are_no_column(tmp_path):
    ok = {"total": 1, "made": 1, "failed": 0, "errors": []}
    fake_job(tmp_path, 0, ["sweep=s", "model.compile=false"], [row("a")], ok)
    fake_job(tmp_path, 1, ["sweep=s", "model.compile=true"], [row("a")], None)  # killed: no status.json
    fake_job(tmp_path, 2, ["sweep=s", "model.compile=true", "seed=5"],
             [row("b", status="failed", error="OOM")], {**ok, "made": 0, "failed": 1})
    merged = merge(tmp_path)
    assert [j.status for j in merged.jobs] == ["ok", "incomplete", "failed"]
    assert merged.exit_code == 1 and merged.rows == 3 and merged.errors == []
    table = read(tmp_path / "results.csv")
    # model.compile is swept but no results column: it gets one; seed is one already.
    assert list(table.columns) == ["job", *COLUMNS, "overrides", "model.compile"]
    assert list(table["model.compile"]) == ["false", "true", "true"]
    assert list(table["image"])[:2] == ["0/images/a.png", "1/images/a.png"]
    jobs = read(tmp_path / "jobs.csv")
    assert list(jobs["status"]) == ["ok", "incomplete", "failed"]
    assert "did not finish" in jobs["error"][1] and "1 image(s) failed" in jobs["error"][2]


def test_swept_keys_are_the_overrides_that_differ_between_jobs():
    from sweep.cli.multirun import Job

    jobs = [Job(i, None, o, [], "ok") for i, o in enumerate(
        [["sweep=a", "guidance_scale=3"], ["sweep=a", "guidance_scale=7", "+extra=1"]])]
    assert swept_keys(jobs) == ["guidance_scale", "extra"]


def test_merged_layout_keeps_the_sweeps_layout_and_adds_the_swept_keys():
    from sweep.cli.multirun import Job, Merged, merged_layout

    hint = {"rows": "seed", "cols": "steps", "sheets": "guidance_scale", "sweep": "s"}
    rows = [row(f"{m}{s}{n}{g}", model=m, seed=s, num_inference_steps=n, guidance_scale=g)
            for m in ("a", "b") for s in (1, 2) for n in (1, 2) for g in (3, 7)]
    jobs = [Job(i, None, ["sweep=s", f"model={m}"], rows, "ok", layout=hint) for i, m in enumerate("ab")]
    merged = Merged(None, jobs, swept=["model"])
    assert merged_layout(merged, rows) == {"rows": "model,seed", "cols": "num_inference_steps",
                                           "sheets": "guidance_scale"}
    # Shards of one grid (-m 'sweep.grid.num_inference_steps=[1],[2]'): the sweep's own layout, unchanged.
    merged = Merged(None, jobs, swept=["sweep.grid.num_inference_steps"])
    assert merged_layout(merged, rows) == {"rows": "seed", "cols": "num_inference_steps",
                                           "sheets": "guidance_scale"}


def test_a_job_that_crashes_is_recorded_instead_of_stopping_the_multirun(tmp_path, monkeypatch):
    from sweep.cli import app
    from sweep.running import runner

    def crash(*args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access")

    monkeypatch.setattr(runner, "run_sweep", crash)
    monkeypatch.setitem(app.EXIT, "code", 0)
    assert app.run_job({"model": {"device": "cpu"}}, tmp_path, multirun=True) == 1  # returned, not raised
    status = json.loads((tmp_path / "status.json").read_text())
    assert status == {"errors": ["RuntimeError: CUDA error: an illegal memory access"], "exit_code": 1}
    assert app.EXIT["code"] == 1

"""The command line as a user meets it: the quick start's demo, simulate, help, one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
from typer.testing import CliRunner

from cfosstats.cli.app import app

runner = CliRunner()


def test_quick_start_demo_needs_no_data(tmp_path, monkeypatch):
    """`cfosstats agreement --lab demo` simulates the demo study into the cache on first use."""
    monkeypatch.delenv("CFOSSTATS_DATA", raising=False)
    monkeypatch.setenv("CFOSSTATS_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "reports" / "demo"
    result = runner.invoke(app, ["agreement", "--lab", "demo", "--out", str(out)])
    assert result.exit_code == 0, result.output + result.stderr
    assert f"agreement tables written to {out}" in result.output.replace("\n", "")
    objects = pd.read_csv(out / "objects.csv")
    assert set(objects["rater"]) == {"expert_1", "expert_2", "expert_3", "expert_4", "est_GT"}
    assert (tmp_path / "cache" / "demo-seed0" / "image_mapping.xlsx").is_file()


def test_simulate_command_writes_a_readable_study(tmp_path):
    out = tmp_path / "study"
    args = ["simulate", "--out", str(out), "--seed", "5", "--effect", "0"]
    args += ["--n-animals", "2", "--size", "128"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output + result.stderr
    inspected = runner.invoke(app, ["inspect", "--lab", "demo", "--data", str(out)], terminal_width=200)
    assert inspected.exit_code == 0, inspected.output + inspected.stderr
    assert "problems: none" in inspected.output
    assert "C+ (12), C- (12), H (12)" in inspected.output


def test_python_dash_m_entry_point_and_usage_error():
    help_run = subprocess.run(
        [sys.executable, "-m", "cfosstats", "--help"], capture_output=True, text=True, check=False
    )
    assert help_run.returncode == 0 and "inspect" in help_run.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "cfosstats", "inspect", "--lab", "nope", "--data", "."],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().startswith("error: unknown lab 'nope'")
    assert "Traceback" not in bad.stderr

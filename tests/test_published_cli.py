"""Reviewer mode on the command line: bad tables, the headline reports from the shipped tables."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from cfosstats.cli.app import app

pytestmark = pytest.mark.realdata
RUNNER = CliRunner()


def _run(*args: str):
    return RUNNER.invoke(app, list(args))


@pytest.fixture()
def mue_table(source_data, tmp_path):
    return pd.read_csv(source_data / "Figure_5_source_data" / "quantifications_mue.csv")


def _effects(path, out, lab="mue", *extra):
    return _run("effects", "--lab", lab, "--quantification", str(path), "--out", str(out), *extra)


def _replace(column, row, value, **more):
    def damage(t):
        t = t.copy()
        t[column] = t[column].astype(object)
        t.loc[row, column] = value
        for name, v in more.items():
            t.loc[row, name] = v
        return t

    return damage


BAD_TABLES = [
    (
        "missing",
        lambda t: t.drop(columns=["Neun_Area"]),
        "missing column 'Neun_Area' (the analysed region's area in px)",
    ),
    (
        "duplicate",
        lambda t: pd.concat([t, t.iloc[[3]]]),
        "lines 5 and 1202: duplicate rows for image 1028, analysis ens_f27, region PVT",
    ),
    ("text", _replace("count", 7, "many"), "line 9, column 'count': 'many' is not a number"),
    ("negative", _replace("Neun_Area", 2, -5), "line 4, column 'Neun_Area': -5 is negative"),
    (
        "condition",
        _replace("Kondition", 0, "Sham", Group=7),
        "line 2, column 'Kondition': condition 'Sham' is not one of lab mue's conditions (Ext, Ret)",
    ),
    (
        "control",
        lambda t: t[t["Kondition"] != "Ext"].assign(Group=1),
        "no row of the control group 'Ext' (column 'Kondition'): nothing to normalise to",
    ),
    (
        "noanalysis",
        lambda t: t.drop(columns=["unet"]),
        "missing column 'unet' (the analysis: which model or ensemble made each row); "
        "this table cannot be split into analyses",
    ),
]


@pytest.mark.parametrize(("name", "damage", "message"), BAD_TABLES, ids=[b[0] for b in BAD_TABLES])
def test_bad_tables_one_line_exit_2(mue_table, tmp_path, name, damage, message):
    path = tmp_path / f"{name}.csv"
    damage(mue_table).to_csv(path, index=False)
    result = _effects(path, tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert result.output.strip() == f"error: {path}: {message}"
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def test_wue2_published_table_refused(source_data, tmp_path):
    path = source_data / "Figure_5_source_data" / "quantifications_wue2.csv"
    result = _effects(path, tmp_path / "out", "wue2")
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"error: {path}: missing columns 'Nummer' (the image id), 'unet' (the analysis: which model or "
        "ensemble made each row); this table cannot be split into analyses"
    )


def test_unknown_strategy_and_unknown_preset(mue_table, tmp_path):
    path = tmp_path / "renamed.csv"
    mue_table.assign(unet="model_x", ens="group_y").drop_duplicates(["Nummer"]).to_csv(path, index=False)
    result = _effects(path, tmp_path / "out")
    assert result.exit_code == 2 and "cannot tell the strategy of analysis 'model_x'" in result.output
    result = _effects(path, tmp_path / "out", "mue", "--preset", "bogus")
    assert result.output.strip() == "error: unknown preset 'bogus': choose from cfosstats, segebarth2020"


def test_out_over_the_input_is_refused(mue_table, tmp_path):
    path = tmp_path / "tables" / "q.csv"
    path.parent.mkdir()
    mue_table.to_csv(path, index=False)
    result = _effects(path, tmp_path / "tables")
    assert result.exit_code == 2
    assert (
        result.output.strip()
        == f"error: {tmp_path / 'tables'}: --out holds the input {path}: name a new folder"
    )
    assert path.is_file()


def test_effects_from_the_study_table_with_its_statistics(source_data, tmp_path):
    folder = source_data / "Figure_5_source_data"
    out = tmp_path / "effects"
    result = _effects(
        folder / "quantifications_mue.csv",
        out,
        "mue",
        "--statistics",
        str(folder / "stat_results_quantifications_mue.csv"),
    )
    assert result.exit_code == 0, result.output
    assert "analyses: 10 consensus ensembles, 40 consensus models" in result.output
    assert "images per group: Ext 12, Ret 12" in result.output
    assert "published statistics reproduced: 585/585 values" in result.output
    run = json.loads((out / "run.json").read_text())
    assert run["preset"]["name"] == "segebarth2020"
    assert pd.read_csv(out / "reproduction.csv")["equal"].all()  # fmt: skip


def test_headline_wue1_report_without_data(tmp_path, monkeypatch, source_data):
    monkeypatch.delenv("CFOSSTATS_DATA", raising=False)
    monkeypatch.setenv("CFOSSTATS_CACHE", str(tmp_path / "empty-cache"))
    result = _run("report", "--lab", "wue1", "--out", str(tmp_path / "reports"))
    assert result.exit_code == 0, result.output
    folder = tmp_path / "reports" / "wue1"
    assert (folder / "report.html").is_file() and (folder / "report.pdf").is_file()
    qmd = (folder / "report.qmd").read_text(encoding="utf-8")
    verdict = qmd.split("# Verdict", 1)[1].split("\n# ", 1)[0]
    # The study's CA1 finding, by every analysis.
    assert (
        "CA1 density: higher in C- than H (6/6), higher in C+ than H (6/6), no C- vs C+ difference (6/6)"
        in verdict
    )
    # Figure 4: which effects the majority finds, and that the numbers are the study's.
    assert "The majority of 65 analyses finds 15 of 30 effects" in verdict
    assert "DG_infra" not in verdict.split("Figure 4")[1].split("Analyses that")[0]
    assert "H = 26.472" in verdict and "132 of 132 published statistics" in verdict
    assert "stat_results_quantifications_wue1.xlsx" in qmd and "Apache-2.0" in qmd
    # Looked at as a reviewer would: nothing wider than the window at 1280 px or the PDF page.
    from tests.test_report import _pdf_pages, overflow_at_1280, right_margin_ink

    widths = overflow_at_1280(folder / "report.html")
    assert widths["page"] <= widths["width"] and widths["out"] == [] and widths["scrolled"] == [], widths
    pages = _pdf_pages(folder / "report.pdf", tmp_path)
    assert len(pages) >= 4 and max(right_margin_ink(pages)) < 0.002


def test_mue_report_shows_table1(tmp_path, monkeypatch, source_data):
    monkeypatch.delenv("CFOSSTATS_DATA", raising=False)
    monkeypatch.setenv("CFOSSTATS_CACHE", str(tmp_path / "empty-cache"))
    result = _run("report", "--lab", "mue", "--out", str(tmp_path / "reports"), "--format", "html")
    assert result.exit_code == 0, result.output
    qmd = (tmp_path / "reports" / "mue" / "report.qmd").read_text(encoding="utf-8")
    before = qmd.split(": The paper's Table 1 for this lab", 1)[0].rstrip().splitlines()
    rows = []
    for line in reversed(before):
        if not line.startswith("|"):
            break
        rows.insert(0, line)
    header, body = rows[0], [r for r in rows[2:]]
    assert "initialization" in header and "U" in header and "eta²" in header
    variants = [row.split("|")[1].strip() for row in body]
    assert variants[:3] == ["from scratch"] * 3 and variants[3:6] == ["fine-tuned"] * 3
    assert variants[6:9] == ["frozen"] * 3
    first = [cell.strip() for cell in body[0].split("|")]
    assert first[2] == "mue_consensus1 ensemble" and first[5] == "25" and first[3] == "1.000"

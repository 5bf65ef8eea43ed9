"""`cfosstats groundtruth` and `cfosstats agreement` end to end on the real data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cfosstats.cli.app import app
from cfosstats.core.imageio import read_mask

runner = CliRunner()


@pytest.mark.realdata
@pytest.mark.parametrize("lab", ["wue1", "mue", "wue2"])
def test_groundtruth_command_reproduces_published_est_gt(train_data, tmp_path, lab):
    out = tmp_path / "gt"
    result = runner.invoke(
        app, ["groundtruth", "--lab", lab, "--data", str(train_data), "--method", "staple", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output + result.stderr
    published = sorted((train_data / f"lab-{lab}" / "labels" / "est_GT").glob("*.png"))
    assert published and sorted(p.name for p in out.glob("*.png")) == [p.name for p in published]
    for path in published:
        np.testing.assert_array_equal(read_mask(out / path.name), read_mask(path), err_msg=path.name)
    annotators = pd.read_csv(out / "annotators.csv", dtype={"image_id": str})
    assert len(annotators) == len(published) * annotators["annotator"].nunique()
    assert annotators[["sensitivity", "specificity"]].apply(lambda c: c.between(0, 1)).all().all()


@pytest.mark.realdata
def test_agreement_command_on_mue(train_data, tmp_path):
    out = tmp_path / "agreement"
    result = runner.invoke(app, ["agreement", "--lab", "mue", "--data", str(train_data), "--out", str(out)])
    assert result.exit_code == 0, result.output + result.stderr
    objects = pd.read_csv(out / "objects.csv", dtype={"image_id": str})
    assert list(objects.columns) == (
        "image_id rater reference n_rater n_reference tp precision recall f1 mean_iou".split()
    )
    assert len(objects) == 5 * 5 * 4  # 5 images, 5 label sets (4 annotators + est_GT), ordered pairs
    assert (pd.read_csv(out / "images.csv")["reference_source"] == "published").all()
    assert "published (5 images)" in result.output


def test_unknown_groundtruth_method(tmp_path):
    result = runner.invoke(app, ["groundtruth", "--lab", "mue", "--method", "mean", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: unknown method 'mean': choose one of staple, majority, objects"

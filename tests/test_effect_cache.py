"""Effect tests are cached: an unchanged rerun tests nothing and writes the same bytes; the pairs
matched for ensemble consistency grow linearly with the number of sources."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from cfosstats.analyses.plan import CONSISTENCY_PARTNERS, compared_pairs
from cfosstats.analyses.validity import run_effects


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from cfosstats.datasets import load_lab
    from cfosstats.datasets.registry import load_lab_config
    from cfosstats.simulate.study import simulate_study

    root = tmp_path_factory.mktemp("cache") / "study"
    simulate_study(root, config=load_lab_config("demo"), seed=1, n_animals=2, images_per_animal=2, size=96)
    return load_lab("demo", data=root)


def _csvs(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.csv"))}


def test_an_unchanged_rerun_reads_every_test_back_and_writes_the_same_bytes(lab, tmp_path):
    out = tmp_path / "effects"
    first = run_effects(lab, out, jobs=1, n_boot=30)
    cold = _csvs(out)
    assert first.run["test_cache_hits"] == 0
    second = run_effects(lab, out, jobs=1, n_boot=30)
    units = first.tables["effects"][["source", "region", "readout"]].drop_duplicates()
    assert second.run["test_cache_hits"] == len(units) > 10
    assert (first.tables["effects"]["test"] != "skipped").sum() > 100
    assert _csvs(out) == cold
    # Another level (alpha) changes the calls: nothing may come from the cache.
    third = run_effects(lab, out, jobs=1, n_boot=30, alpha=0.01)
    assert third.run["test_cache_hits"] == 0
    assert set(third.tables["effects"]["alpha"].dropna()) == {0.01}
    stored = json.loads((out / ".cache" / "measurements-tests.json").read_text())
    assert len(stored["entries"]) == len(units)  # only the entries of the last run are kept


def test_changed_values_are_retested(lab, tmp_path):
    import pandas as pd

    from cfosstats.analyses.effect_cache import unit_key
    from cfosstats.analyses.effect_tables import Unit

    frame = pd.DataFrame({"image_id": ["1", "2"], "group": ["H", "C+"], "animal": ["a", "b"],
                          "value": [1.0, 2.0], "raw": [3.0, 4.0]})  # fmt: skip
    args = (["H", "C+"], 0.05, ["image"], 0, 0, 0.95)
    key = unit_key(Unit("s", "st", "r", "count", frame), *args)
    nudged = frame.assign(value=[1.0, 2.0 + 2**-40])
    assert unit_key(Unit("s", "st", "r", "count", nudged), *args) != key
    assert unit_key(Unit("s", "st", "r", "count", frame.copy()), *args) == key


@pytest.mark.parametrize("n", [2, 5, 9, 10, 20, 36])
def test_consistency_pairs_are_all_pairs_up_to_nine_sources_then_a_ring(n):
    sources = [f"m{i:02d}" for i in range(n)]
    pairs = compared_pairs(sources)
    assert len(set(pairs)) == len(pairs)
    assert all(sources.index(a) < sources.index(b) for a, b in pairs)
    if n <= 2 * CONSISTENCY_PARTNERS + 1:
        assert len(pairs) == n * (n - 1) // 2
    else:
        assert len(pairs) == n * CONSISTENCY_PARTNERS
        per_source = Counter(s for pair in pairs for s in pair)
        assert set(per_source.values()) == {2 * CONSISTENCY_PARTNERS}  # balanced

"""benchmarks/run.py's data sizes (the years axis moves the window and the split with the years it writes) and how
it counts a stage's memory."""

from __future__ import annotations

from benchmarks.run import size_label, stage_peak_rss, years_params

PARAMS = {
    "ingest": {"window": {"start": "2013-01", "end": "2013-12"}},
    "features": {
        "split": {"train": {"start": "2013-01", "end": "2013-10"}, "test": {"start": "2013-11", "end": "2013-12"}}
    },
}


def test_one_year_keeps_the_window_and_the_split():
    changes = years_params(PARAMS, 1)
    assert changes[("ingest", "window")] == PARAMS["ingest"]["window"]
    assert changes[("features", "split")] == PARAMS["features"]["split"]


def test_thirty_years_test_on_the_last_year_and_train_on_every_month_before():
    changes = years_params(PARAMS, 30)
    assert changes[("ingest", "window")] == {"start": "2013-01", "end": "2042-12"}
    assert changes[("features", "split")] == {
        "train": {"start": "2013-01", "end": "2042-10"},
        "test": {"start": "2042-11", "end": "2042-12"},
    }


def test_a_rolling_training_window_keeps_its_length():
    params = {
        **PARAMS,
        "features": {"split": {"train": {"rolling_months": 6}, "test": {"start": "2013-11", "end": "2013-12"}}},
    }
    split = years_params(params, 3)[("features", "split")]
    assert split == {"train": {"rolling_months": 6}, "test": {"start": "2015-11", "end": "2015-12"}}


def test_the_params_given_are_not_changed():
    before = repr(PARAMS)
    years_params(PARAMS, 10)
    assert repr(PARAMS) == before


def test_size_label_names_months_and_flights_when_recorded():
    assert (
        size_label({"scale": 30.0, "months": 360, "rows": {"flights": 10_103_280}})
        == "30x (360 months, 10,103,280 flights)"
    )
    assert size_label({"scale": 1.0, "rows": {"flights": 336_776}}) == "1x (336,776 flights)"
    assert size_label({"scale": 10.0, "months": 120}) == "10x (120 months)"
    assert size_label({"scale": 2.0}) == "2x"


def test_a_stage_with_worker_processes_counts_their_memory_with_its_own():
    logged = "INFO compute: peak RSS MiB: this process 130, workers 236 228\nINFO ingest finished\n"
    assert stage_peak_rss({"peak_rss_mib": 240.0, "output": logged}) == 130 + 236 + 228
    assert stage_peak_rss({"peak_rss_mib": 900.0, "output": logged}) == 900.0  # the stage grew after its workers
    assert stage_peak_rss({"peak_rss_mib": 300.0, "output": "INFO train finished\n"}) == 300.0

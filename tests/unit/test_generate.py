"""benchmarks/generate.py on a tiny raw folder: same arguments give the same bytes, the schema's columns and keys
hold, and the row counts follow --scale and --years."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest
from benchmarks.generate import generate

FLIGHTS = [
    # year,month,day,dep_time,sched_dep_time,dep_delay,arr_time,sched_arr_time,arr_delay,carrier,flight,tailnum,
    # origin,dest,air_time,distance,hour,minute,time_hour
    "2013,{m},1,517,515,2,830,819,11,UA,1545,N14228,EWR,IAH,227,1400,5,15,2013-{mm}-01T10:00:00Z",
    "2013,{m},1,533,529,4,850,830,20,UA,1714,N24211,LGA,IAH,227,1416,5,29,2013-{mm}-01T10:00:00Z",
    "2013,{m},1,2359,2359,0,5,1,4,UA,1546,N14228,EWR,IAH,227,1400,23,59,2013-{mm}-02T04:00:00Z",
    "2013,{m},2,NA,600,NA,NA,815,NA,AA,301,NA,JFK,ORD,NA,740,6,0,2013-{mm}-02T11:00:00Z",
    "2013,{m},2,600,600,0,815,815,0,AA,301,N3ALAA,LGA,ORD,120,733,6,0,2013-{mm}-02T11:00:00Z",
]
FLIGHT_HEADER = (
    "year,month,day,dep_time,sched_dep_time,dep_delay,arr_time,sched_arr_time,arr_delay,carrier,flight,tailnum,"
    "origin,dest,air_time,distance,hour,minute,time_hour"
)
WEATHER_HEADER = (
    "origin,year,month,day,hour,temp,dewp,humid,wind_dir,wind_speed,wind_gust,precip,pressure,visib,time_hour"
)
WEATHER = [
    "EWR,2013,{m},1,5,39.02,26.06,59.37,270,10.35,NA,0,1012,10,2013-{mm}-01T10:00:00Z",
    "JFK,2013,{m},1,5,NA,NA,NA,NA,NA,NA,0,NA,10,2013-{mm}-01T10:00:00Z",
]
KEY = ["year", "month", "day", "carrier", "flight", "origin"]


@pytest.fixture
def source(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    (raw / "flights").mkdir(parents=True)
    (raw / "weather").mkdir()
    for m in (1, 2):
        fmt = {"m": m, "mm": f"{m:02d}"}
        lines = [FLIGHT_HEADER] + [row.format(**fmt) for row in FLIGHTS]
        (raw / "flights" / f"2013-{m:02d}.csv").write_text("\n".join(lines) + "\n")
        lines = [WEATHER_HEADER] + [row.format(**fmt) for row in WEATHER]
        (raw / "weather" / f"2013-{m:02d}.csv").write_text("\n".join(lines) + "\n")
    (raw / "planes.csv").write_text(
        "tailnum,year,type,manufacturer,model,engines,seats,speed,engine\n"
        "N14228,1999,Fixed wing multi engine,BOEING,737-824,2,149,NA,Turbo-fan\n"
    )
    (raw / "airlines.csv").write_text('carrier,name\nUA,"United Air Lines, Inc."\nAA,American Airlines Inc.\n')
    return raw


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*.csv")}


def read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def test_scale_one_copies_the_source_bytes(source, tmp_path):
    generate(source, tmp_path / "out")
    assert digest(tmp_path / "out") == digest(source)


def test_same_seed_same_bytes_other_seed_other_bytes(source, tmp_path):
    generate(source, tmp_path / "a", scale=3.5, years=2, seed=7)
    generate(source, tmp_path / "b", scale=3.5, years=2, seed=7)
    generate(source, tmp_path / "c", scale=3.5, years=2, seed=8)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")


def test_rows_per_month_scale(source, tmp_path):
    written = generate(source, tmp_path / "out", scale=3.4)
    assert sorted(p.name for p in (tmp_path / "out" / "flights").iterdir()) == ["2013-01.csv", "2013-02.csv"]
    for m in (1, 2):
        flights = read(tmp_path / "out" / "flights" / f"2013-{m:02d}.csv")
        assert list(flights.columns) == FLIGHT_HEADER.split(",")
        assert len(flights) == 3 * len(FLIGHTS) + round(0.4 * len(FLIGHTS))
        assert not flights.duplicated(KEY).any()
        assert flights["flight"].astype(int).between(1, 9999).all()
        assert (flights["month"] == str(m)).all()
        # the copies are other aircraft, each in planes.csv when the original is
        tails = set(flights["tailnum"]) - {"NA"}
        assert {"N14228", "N14228-1", "N14228-2", "N14228-3"} <= tails
        weather = read(tmp_path / "out" / "weather" / f"2013-{m:02d}.csv")
        assert len(weather) == len(WEATHER)
    assert written == {"flights": 2 * len(flights), "weather": 2 * len(WEATHER), "planes": 4}
    assert list(read(tmp_path / "out" / "planes.csv")["tailnum"]) == ["N14228", "N14228-1", "N14228-2", "N14228-3"]
    assert (tmp_path / "out" / "airlines.csv").read_bytes() == (source / "airlines.csv").read_bytes()


def test_scale_below_one_samples_rows(source, tmp_path):
    generate(source, tmp_path / "out", scale=0.4, months=["2013-02"])
    assert [p.name for p in (tmp_path / "out" / "flights").iterdir()] == ["2013-02.csv"]
    flights = read(tmp_path / "out" / "flights" / "2013-02.csv")
    original = read(source / "flights" / "2013-02.csv")
    assert len(flights) == round(0.4 * len(FLIGHTS))
    assert flights.merge(original, how="left", indicator=True)["_merge"].eq("both").all()


def test_more_years(source, tmp_path):
    generate(source, tmp_path / "out", years=3, seed=1)
    names = sorted(p.name for p in (tmp_path / "out" / "flights").iterdir())
    assert names == ["2013-01.csv", "2013-02.csv", "2014-01.csv", "2014-02.csv", "2015-01.csv", "2015-02.csv"]
    assert sorted(p.name for p in (tmp_path / "out" / "weather").iterdir()) == names
    base = read(tmp_path / "out" / "flights" / "2013-01.csv")
    later = read(tmp_path / "out" / "flights" / "2015-01.csv")
    assert len(later) == len(base)
    assert (later["year"] == "2015").all() and later["time_hour"].str.startswith("2015-01-").all()
    # same schedule, noisy delays; missing stays missing
    assert later[["carrier", "flight", "sched_dep_time"]].equals(base[["carrier", "flight", "sched_dep_time"]])
    assert (later["dep_delay"] == "NA").equals(base["dep_delay"] == "NA")
    delays = pd.to_numeric(later["arr_delay"], errors="coerce").dropna()
    assert delays.between(-120, 2000).all()
    clock = pd.to_numeric(later["dep_time"], errors="coerce").dropna().astype(int)
    assert clock.between(1, 2400).all() and (clock % 100 < 60).all()
    weather = read(tmp_path / "out" / "weather" / "2014-02.csv")
    assert (weather["year"] == "2014").all() and weather["time_hour"].str.startswith("2014-02-").all()
    assert weather.loc[1, "temp"] == "NA"


def test_too_many_copies_for_flight_numbers_is_refused(source, tmp_path):
    with pytest.raises(SystemExit, match="lower --scale"):
        generate(source, tmp_path / "out", scale=6000)

"""The reference log-prob cache file: only checksummed, finite values are believed; anything else is recomputed."""

import json
import logging
import math

from vlm_dpo.training.trainers.ref_cache import RefLogpCache, agrees, checksum, parse


def line(key="k1", chosen=-12.5, rejected=-14.25, **change):
    """A line as the cache writes it (checksum of these values), with ``change`` applied on top."""
    entry = {"key": key, "chosen": chosen, "rejected": rejected, "check": checksum(key, chosen, rejected)}
    return json.dumps({**entry, **change})


def test_a_line_is_believed_only_when_well_formed_and_checksummed():
    assert parse(line()) == ("k1", (-12.5, -14.25))
    edited = {**json.loads(line()), "chosen": -6.25}
    assert parse(json.dumps(edited)) is None  # edited after it was written: the checksum no longer matches
    for bad in ("-12.5", 12, True, None, [1.0], math.nan, math.inf):  # checksummed, but not two finite floats
        assert parse(line(chosen=bad)) is None, bad
    assert parse(line(key=7)) is None
    assert parse(json.dumps({"key": "k1", "chosen": -1.0, "rejected": -2.0})) is None  # no checksum
    assert parse(line()[:20]) is None  # cut short by a killed run
    assert parse("[1, 2]") is None and parse("") is None


def test_bad_lines_are_counted_dropped_and_removed_from_the_file(tmp_path, caplog):
    path = tmp_path / "ref.jsonl"
    path.write_text("\n".join([line(), line("k2", chosen=-1.0, check="0"), line("k3", -3.0, -4.0), '{"key": "k4'])
                    + "\n")
    with caplog.at_level(logging.WARNING):
        cache = RefLogpCache(path)
    assert cache.values == {"k1": (-12.5, -14.25), "k3": (-3.0, -4.0)} and cache.loaded == {"k1", "k3"}
    assert "2 of 4 reference log-prob entries" in caplog.text
    assert [parse(text)[0] for text in path.read_text().splitlines()] == ["k1", "k3"]
    assert cache.get(["k1", "k3"]) == [(-12.5, -14.25), (-3.0, -4.0)] and cache.get(["k1", "k2"]) is None


def test_put_appends_checksummed_lines_and_never_writes_non_finite_values(tmp_path):
    cache = RefLogpCache(tmp_path / "ref.jsonl")
    cache.put({"a": (-1.5, -2.5), "b": (-math.inf, -2.0)})
    assert cache.values["b"] == (-math.inf, -2.0)  # used in this run
    assert RefLogpCache(tmp_path / "ref.jsonl").values == {"a": (-1.5, -2.5)}
    cache.discard("a test")
    assert not (tmp_path / "ref.jsonl").exists() and not cache.values and not cache.loaded


def test_agreement_is_within_float_noise_only():
    assert agrees([(-100.0, -50.0)], [(-100.0 + 5e-3, -50.0)], tolerance=1e-4)  # 5e-5 relative
    assert not agrees([(-100.0, -50.0)], [(-100.0 * 0.5, -50.0)], tolerance=1e-2)
    assert not agrees([(-0.5, -0.25)], [(-0.5, -0.2)], tolerance=1e-4)

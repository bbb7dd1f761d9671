"""pytest tests of repute.Engine: a base and a delta in an update state directory, checked
against whole snapshots and the `repute lookup` CLI (which answers through the library's
engine for a state directory) as oracles.
"""

import hashlib
import json
import os
import pathlib
import shutil
import threading

import pytest

import repute
from test_repute import ROOT, cli, cli_answers, comparable, sample_queries


def build(out, *extra, sequence):
    done = cli("build", "-o", str(out), "--manifest", str(ROOT / "data" / "feeds.toml"),
               "--created", str(1_700_000_000 + sequence), "--sequence", str(sequence), *extra)
    assert done.returncode == 0, done.stderr
    return out


def identity(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def install(state, base, deltas, sequence):
    """Writes current.json the way `repute update` does: a temporary file, then a rename."""
    current = {"sequence": sequence, "base": base, "deltas": deltas}
    tmp = state / "current.json.tmp"
    tmp.write_text(json.dumps(current))
    os.replace(tmp, state / "current.json")


@pytest.fixture(scope="module")
def layers(tmp_path_factory):
    """old.snap (the samples plus an extra feed), new.snap (the samples alone, plus another
    extra feed), the delta between them, and a state directory holding old + delta."""
    d = tmp_path_factory.mktemp("engine")
    extra_old = d / "extra-old.txt"
    extra_new = d / "extra-new.txt"
    removed = [hashlib.sha256(f"removed-{i}".encode()).hexdigest() for i in range(20)]
    added = [hashlib.sha256(f"added-{i}".encode()).hexdigest() for i in range(20)]
    extra_old.write_text("".join(f"{h}  removed-{i}.bin\n" for i, h in enumerate(removed)))
    extra_new.write_text("".join(f"{h}  added-{i}.bin\n" for i, h in enumerate(added)))
    old = build(d / "old.snap", "--feed", f"sha256sum:malicious:{extra_old}", sequence=1)
    new = build(d / "new.snap", "--feed", f"sha256sum:suspicious:{extra_new}", sequence=2)
    delta = d / "new.delta"
    done = cli("diff", str(old), str(new), "-o", str(delta))
    assert done.returncode == 0, done.stderr
    state = d / "state"
    state.mkdir()
    base_name = identity(old) + ".snap"
    delta_name = identity(delta) + ".delta"
    shutil.copy(old, state / base_name)
    shutil.copy(delta, state / delta_name)
    install(state, base_name, [], 1)
    queries = [q for q in sample_queries() + removed + added if valid(repute.Snapshot(new), q)]
    return {"old": old, "new": new, "delta": delta, "state": state, "base_name": base_name,
            "delta_name": delta_name, "queries": queries, "removed": removed, "added": added}


def valid(snap, q):
    try:
        snap.lookup(q)
        return True
    except repute.QueryError:
        return False


def answers(source, queries):
    return [comparable(source.lookup(q)) for q in queries]


def test_engine_follows_a_state_directory(layers):
    state, queries = layers["state"], layers["queries"]
    install(state, layers["base_name"], [], 1)
    old = repute.Snapshot(layers["old"])
    new = repute.Snapshot(layers["new"])
    old_answers, new_answers = answers(old, queries), answers(new, queries)
    assert old_answers != new_answers
    assert sum(a is not None for a in new_answers) > 1500

    engine = repute.Engine.open_state_dir(state)
    assert answers(engine, queries) == old_answers
    assert engine.status["sequence"] == 1 and engine.status["deltas"] == []
    assert engine.reload() is False
    pinned = engine.pin()
    assert pinned.pinned and not engine.pinned

    install(state, layers["base_name"], [layers["delta_name"]], 2)
    assert engine.reload() is True
    assert answers(engine, queries) == new_answers
    assert answers(pinned, queries) == old_answers
    # The CLI answers a state directory through the library's engine: the same oracle.
    cli_view = [comparable(a) for a in cli_answers(state, queries)]
    assert answers(engine, queries) == cli_view
    status = engine.status
    assert status["sequence"] == 2 and status["layers"] == 2
    assert status["deltas"] == [layers["delta_name"].removesuffix(".delta")]
    assert status["last_update"]["ok"] is True
    assert pinned.status == {**pinned.status, "pinned": True, "sequence": 1, "layers": 1}
    assert engine.metadata["sequence"] == 2
    for h in layers["removed"]:
        assert engine.lookup(h) is None and pinned.lookup(h)["verdict"] == "malicious"
    for h in layers["added"]:
        assert engine.lookup(h)["verdict"] == "suspicious" and pinned.lookup(h) is None

    # A broken current.json: reload raises, the engine keeps its view and says why.
    (state / "current.json.tmp").write_text("{ not json")
    os.replace(state / "current.json.tmp", state / "current.json")
    with pytest.raises(repute.StateError):
        engine.reload()
    assert answers(engine, queries) == new_answers
    assert engine.status["last_update"]["ok"] is False
    with pytest.raises(ValueError):
        pinned.reload()
    install(state, layers["base_name"], [], 1)


def test_lookup_many_agrees_with_lookup(layers):
    engine = repute.Engine(layers["old"], [layers["delta"]])
    queries = layers["queries"]
    want = [engine.lookup(q) for q in queries]
    assert engine.lookup_many(queries) == want
    assert want == [repute.Snapshot(layers["new"]).lookup(q) for q in queries]
    raw = [bytes.fromhex(h) for h in layers["added"]]
    assert [comparable(x) for x in engine.lookup_many(raw)] == \
        [comparable(engine.lookup(h)) for h in layers["added"]]


def test_engine_errors(layers, tmp_path):
    with pytest.raises(repute.DeltaError):
        repute.Engine(layers["delta"])
    with pytest.raises(repute.IoError):
        repute.Engine(tmp_path / "missing.snap")
    with pytest.raises(repute.ReputeError):
        repute.Engine.open_state_dir(tmp_path)
    with pytest.raises(ValueError):
        repute.Engine(layers["new"]).reload()
    with pytest.raises(repute.QueryError):
        repute.Engine(layers["new"]).lookup("")
    with pytest.raises(TypeError):
        repute.Engine(layers["new"]).lookup_many("not a list")
    # A delta over the wrong base.
    with pytest.raises(repute.WrongBaseError):
        repute.Engine(layers["new"], [layers["delta"]])
    assert issubclass(repute.StateError, repute.ReputeError)


def test_threads_share_an_engine_while_it_reloads(layers):
    state, queries = layers["state"], layers["queries"][:300]
    install(state, layers["base_name"], [], 1)
    engine = repute.Engine.open_state_dir(state)
    old = answers(repute.Snapshot(layers["old"]), queries)
    new = answers(repute.Snapshot(layers["new"]), queries)
    errors = []
    stop = threading.Event()

    def work():
        try:
            while not stop.is_set():
                got = [comparable(x) for x in engine.lookup_many(queries)]
                # One batch is answered from one view: all old or all new.
                assert got in (old, new)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for i in range(10):
        if i % 2 == 0:
            install(state, layers["base_name"], [layers["delta_name"]], 2)
        else:
            install(state, layers["base_name"], [], 1)
        assert engine.reload() is True
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    install(state, layers["base_name"], [], 1)


def test_lookup_many_bytes_items_and_hex_fast_path(layers):
    snap = repute.Snapshot(layers["new"])
    hexes = [q for q in layers["queries"] if len(q) in (32, 40, 64) and
             all(c in "0123456789abcdefABCDEF" for c in q)]
    assert len(hexes) > 1000
    by_hex = snap.lookup_many(hexes)
    assert by_hex == [snap.lookup(h) for h in hexes]
    # Upper case, and non-ASCII look-alikes, take the right paths.
    assert snap.lookup_many([h.upper() for h in hexes]) == \
        [None if r is None else {**r, "query": h.upper()} for h, r in zip(hexes, by_hex)]
    by_bytes = snap.lookup_many([bytes.fromhex(h) for h in hexes])
    assert [comparable(x) for x in by_bytes] == [comparable(x) for x in by_hex]
    with pytest.raises(repute.QueryError):
        snap.lookup_many([b"\x00" * 7])
    # 64 non-ASCII digits are no hex digest: both calls take the general path alike.
    odd = "\u0661" * 64
    try:
        single = [snap.lookup(odd)]
    except repute.QueryError:
        with pytest.raises(repute.QueryError):
            snap.lookup_many([odd])
    else:
        assert snap.lookup_many([odd]) == single

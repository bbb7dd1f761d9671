"""pytest tests of the repute Python package, against the `repute` CLI as oracle.

REPUTE_BIN names the CLI binary (default: target/debug/repute at the repository root).
"""

import hashlib
import json
import os
import pathlib
import subprocess
import threading

import pytest

import repute

ROOT = pathlib.Path(__file__).resolve().parents[4]
REPUTE_BIN = os.environ.get("REPUTE_BIN", str(ROOT / "target" / "debug" / "repute"))


def cli(*args, stdin=None):
    return subprocess.run(
        [REPUTE_BIN, *args], input=stdin, capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="session")
def sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("snap") / "sample.snap"
    done = cli("build", "-o", str(out), "--manifest", str(ROOT / "data" / "feeds.toml"))
    assert done.returncode == 0, done.stderr
    return out


def sample_queries():
    queries = []
    for name in ["malware-hashes.txt", "md5sums.txt", "sha1sums.txt", "sha256sums.txt",
                 "bad-domains.txt", "bad-urls.txt"]:
        for line in (ROOT / "data" / name).read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                queries.append(line.split()[0])
    queries += ["44d88612fea8a8f36de82e1278abb02f", "unlisted.example", "https://x.example/a",
                "0" * 64]
    return queries


def cli_answers(snapshot, queries):
    done = cli("lookup", str(snapshot), "--format", "jsonl", stdin="\n".join(queries) + "\n")
    assert done.returncode in (0, 1, 2), done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def comparable(answer):
    """A CLI jsonl line or a Python hit, as the fields both have (None for unknown)."""
    if answer is None or answer.get("verdict") == "unknown":
        return None
    keys = ["type", "verdict", "name", "category", "source", "matched", "first_seen",
            "last_seen", "confidence"]
    return {k: answer.get(k) for k in keys}


def test_lookups_agree_with_the_cli(sample):
    snap = repute.Snapshot(sample)
    snap.verify()
    queries = [q for q in sample_queries()]
    answers = cli_answers(sample, queries)
    # The CLI reports a bad query as an error line; keep the queries both accept.
    good = [(q, a) for q, a in zip(queries, answers) if "error" not in a]
    assert len(good) > 1500
    listed = 0
    for query, answer in good:
        got = snap.lookup(query)
        assert comparable(got) == comparable(answer), query
        listed += got is not None
    assert listed > 1500
    many = snap.lookup_many([q for q, _ in good])
    assert [comparable(m) for m in many] == [comparable(a) for _, a in good]


def test_lookup_raw_bytes_and_packed_batches(sample):
    snap = repute.Snapshot(sample, mmap=False)
    hexdigits = set("0123456789abcdefABCDEF")
    hits = [q for q in sample_queries() if len(q) == 64 and set(q) <= hexdigits and snap.lookup(q)]
    assert hits
    raw = b"".join(bytes.fromhex(h) for h in hits) + bytes(32)
    results = snap.lookup_many(raw, kind="sha256")
    assert len(results) == len(hits) + 1 and results[-1] is None
    for h, r in zip(hits, results):
        assert r == snap.lookup(bytes.fromhex(h)) | {"query": h}
    assert snap.lookup(bytes.fromhex(hits[0]))["matched"] == hits[0]
    with pytest.raises(ValueError):
        snap.lookup_many(bytes(33))


def test_errors_are_typed(sample, tmp_path):
    snap = repute.Snapshot(sample)
    with pytest.raises(repute.QueryError):
        snap.lookup("http://")
    with pytest.raises(repute.QueryError):
        snap.lookup(b"short")
    with pytest.raises(repute.QueryError):
        snap.lookup_many(["example.com", ""])
    with pytest.raises(TypeError):
        snap.lookup(12)
    with pytest.raises(repute.IoError):
        repute.Snapshot(tmp_path / "missing.snap")
    (tmp_path / "junk.snap").write_bytes(b"not a snapshot at all" * 10)
    with pytest.raises(repute.MagicError):
        repute.Snapshot(tmp_path / "junk.snap")
    data = bytearray(sample.read_bytes())
    data[len(data) // 2] ^= 0x40
    (tmp_path / "corrupt.snap").write_bytes(bytes(data))
    with pytest.raises(repute.ReputeError):
        repute.Snapshot(tmp_path / "corrupt.snap", verify=True)
    with pytest.raises((repute.ChecksumError, repute.MalformedError)):
        repute.Snapshot(tmp_path / "corrupt.snap").verify()
    assert issubclass(repute.ChecksumError, repute.ReputeError)


def test_metadata(sample):
    meta = repute.Snapshot(sample).metadata
    assert meta["records"] > 0 and meta["keys"]["sha256"] > 0
    assert {f["source"] for f in meta["feeds"]} >= {"sample-malware", "sample-distro"}


def test_threads_share_one_snapshot(sample):
    snap = repute.Snapshot(sample)

    def valid(q):
        # The samples keep a few deliberately malformed lines (a 63-digit hex string).
        try:
            snap.lookup(q)
            return True
        except repute.QueryError:
            return False

    queries = [q for q in sample_queries() if valid(q)][:400]
    assert len(queries) > 100
    want = [snap.lookup(q) for q in queries]
    errors = []

    def work():
        try:
            for _ in range(5):
                assert snap.lookup_many(queries) == want
                assert [snap.lookup(q) for q in queries[:50]] == want[:50]
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_scan_yields_every_file(sample, tmp_path):
    eicar = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
    (tmp_path / "eicar.com").write_bytes(eicar)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "clean.txt").write_bytes(b"hello\n")
    files = {pathlib.Path(f["path"]).name: f for f in repute.scan(tmp_path, repute.Snapshot(sample))}
    assert set(files) == {"eicar.com", "clean.txt"}
    assert files["clean.txt"]["sha256"] == hashlib.sha256(b"hello\n").hexdigest()
    assert files["clean.txt"]["verdict"] == "unknown"
    assert files["eicar.com"]["md5"] == hashlib.md5(eicar).hexdigest()
    assert files["eicar.com"]["verdict"] == "malicious"


def test_docstrings():
    assert "memory-mapped" in repute.Snapshot.__doc__
    assert "GIL" in repute.Snapshot.lookup_many.__doc__

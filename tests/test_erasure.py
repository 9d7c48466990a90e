"""Erasure reaches the disk: after ``forget`` and ``purge`` the erased faces cannot be carved back.

Each test carves the files the way an attacker with the disk would: it scans the bytes of
the DuckDB file (or PostgreSQL's table files) and of the usearch index for the erased face
crops, face contexts and embeddings, byte for byte. A control scan before the erasure
proves the carving finds them while they are there.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from facelake.config import load_settings
from facelake.identities.index import FaceIndex, index_base
from facelake.identities.matching import dim_of, model_of
from facelake.store import Target, is_postgres

from .dbs import execute, rows
from .test_ingest import cli


def _disk_bytes(db: Target) -> bytes:
    """Every byte the database keeps on disk: the DuckDB file (and WAL), or, after a checkpoint,
    every file of the PostgreSQL database's directory (tables, TOAST, indexes, free space maps)."""
    if not is_postgres(db):
        return b"".join(p.read_bytes() for p in (Path(db), Path(f"{db}.wal")) if p.exists())
    import psycopg

    with psycopg.connect(str(db), autocommit=True) as conn:
        conn.execute("CHECKPOINT")
        row = conn.execute("""SELECT current_setting('data_directory'), oid FROM pg_database
                              WHERE datname = current_database()""").fetchone()
    assert row is not None
    folder = Path(row[0]) / "base" / str(row[1])
    return b"".join(p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file())


def _index_bytes(db: Target) -> bytes:
    path = Path(str(index_base(load_settings(db=db))) + ".faces.usearch")
    return path.read_bytes() if path.exists() else b""


def _traces(db: Target, where: str) -> dict[str, list[bytes]]:
    """The biometric bytes of the sightings matching ``where``: crops, contexts, embeddings (float32),
    and the int8 vectors the usearch index holds for them."""
    faces = rows(db, f"""SELECT s.sighting_id, s.thumb, c.jpeg, s.embedding FROM sightings s
                         LEFT JOIN face_contexts c USING (sighting_id) WHERE {where} ORDER BY 1""")
    assert faces, f"no sightings where {where}"
    out: dict[str, list[bytes]] = {"crops": [], "contexts": [], "embeddings": [], "index vectors": []}
    for _, thumb, context, embedding in faces:
        out["crops"].append(bytes(thumb))
        if context is not None:
            out["contexts"].append(bytes(context))
        out["embeddings"].append(np.asarray(embedding, dtype=np.float32).tobytes())
    if not is_postgres(db):  # pgvector searches in SQL: there is no index file of ours
        settings = load_settings(db=db)
        index = FaceIndex(index_base(settings), model_of(settings), dim_of(settings))
        keys = np.array([f[0] for f in faces], dtype=np.uint64)
        vectors = index.index.get(keys, dtype=np.int8)
        out["index vectors"] = [np.asarray(v, dtype=np.int8).tobytes() for v in vectors if v is not None]
    return out


def _pieces(kind: str, data: bytes) -> list[bytes]:
    """What carving looks for: a JPEG's entropy-coded data (after its SOS marker: the headers before
    are the same in every crop) in 64-byte runs, since PostgreSQL's TOAST cuts a value into ~2 kB
    chunks; an embedding or index vector by its first 64 bytes."""
    if kind in ("crops", "contexts"):
        start = data.index(b"\xff\xda") + 16
        return [data[i : i + 64] for i in range(start, len(data) - 64, 64)]
    return [data[:64]]


def _found(traces: dict[str, list[bytes]], disk: bytes, index: bytes) -> dict[str, int]:
    """How many of each kind the disk still holds any piece of."""
    found = {}
    for kind, items in traces.items():
        where = index if kind == "index vectors" else disk
        found[kind] = sum(any(piece in where for piece in _pieces(kind, data)) for data in items)
    return found


def _ingest_with_person(db: Target, cams: Path, samples: Path) -> None:
    for n, name in enumerate(["obama_partial_face.jpg", "obama_partial_face2.jpg"]):
        shutil.copy(samples / name, cams / "garden" / f"more{n}.jpg")
    assert cli(db, "people", "add", "Barack", str(samples / "obama3.jpg"), "--consent", "test")[0] == 0
    code, output = cli(db, "ingest", str(cams), "--workers", "1")
    assert code == 0, output


def test_forget_leaves_no_crop_context_or_embedding_on_disk(db: Target, cams: Path, samples: Path) -> None:
    _ingest_with_person(db, cams, samples)
    traces = _traces(db, "s.person_id = 1")
    before = _found(traces, _disk_bytes(db), _index_bytes(db))
    # The control: the carving finds what is there (embeddings as stored; DuckDB may compress them).
    assert before["crops"] == len(traces["crops"]) >= 3, before
    if not is_postgres(db):
        assert before["index vectors"] == len(traces["index vectors"]) >= 3, before
    code, output = cli(db, "forget", "Barack")
    assert code == 0, output
    after = _found(traces, _disk_bytes(db), _index_bytes(db))
    assert after == {kind: 0 for kind in traces}, f"carved back after forget: {after} (before: {before})"
    # The store works as before: new faces are written, ids are never given out twice.
    assert cli(db, "people", "add", "Joe", str(samples / "biden.jpg"), "--consent", "test")[0] == 0
    assert rows(db, "SELECT person_id FROM people") == [(2,)], "an erased person's id is not reused"


def test_purge_leaves_no_expired_face_on_disk(db: Target, cams: Path, samples: Path) -> None:
    code, output = cli(db, "ingest", str(cams), "--workers", "1")
    assert code == 0, output
    traces = _traces(db, "TRUE")
    before = _found(traces, _disk_bytes(db), _index_bytes(db))
    assert before["crops"] == len(traces["crops"]) == 3, before
    old = datetime.now() - timedelta(days=400)
    execute(db, "UPDATE images SET ingested_at = ?", [old])
    code, output = cli(db, "purge")
    assert code == 0 and "of 3 unknown faces" in output, output
    after = _found(traces, _disk_bytes(db), _index_bytes(db))
    assert after == {kind: 0 for kind in traces}, f"carved back after purge: {after} (before: {before})"


def test_a_kill_mid_compaction_leaves_a_whole_file_and_the_next_open_finishes(
    tmp_path: Path, cams: Path, samples: Path
) -> None:
    """A compaction interrupted at its worst points (the fresh copy half written; the old file
    linked aside but not yet wiped) leaves a database that opens whole, and the next open wipes."""
    from facelake.store import open_store
    from facelake.store.duck import compact_path, pending_path
    from facelake.store.files import old_name

    db = tmp_path / "f.duckdb"
    _ingest_with_person(db, cams, samples)
    traces = _traces(db, "s.person_id = 1")
    code, output = cli(db, "people", "remove", "Barack")  # unlinks only: the faces stay, the file is whole
    assert code == 0, output
    assert not pending_path(db).exists(), "nothing was erased: nothing to compact"
    counts = rows(db, "SELECT count(*) FROM sightings")
    # As a kill -9 would leave it: the note, a half-written copy, and the old file's second name.
    pending_path(db).touch()
    compact_path(db).write_bytes(Path(db).read_bytes()[:4096])
    old_name(db).write_bytes(Path(db).read_bytes())
    assert rows(db, "SELECT count(*) FROM sightings") == counts, "a read-only open sees the whole file"
    with open_store(db):
        pass
    assert not pending_path(db).exists() and not compact_path(db).exists() and not old_name(db).exists()
    assert rows(db, "SELECT count(*) FROM sightings") == counts
    assert _found(traces, _disk_bytes(db), b"")["crops"] == len(traces["crops"]), "unerased faces are kept"


def test_forgotten_faces_leave_their_clusters_and_the_audit_log(db: Target, cams: Path, samples: Path) -> None:
    for n, name in enumerate(["obama_partial_face.jpg", "obama_partial_face2.jpg"]):
        shutil.copy(samples / name, cams / "garden" / f"more{n}.jpg")
    code, output = cli(db, "ingest", str(cams), "--workers", "1")
    assert code == 0, output
    assert cli(db, "cluster")[0] == 0
    clusters = json.loads(cli(db, "clusters", "--json")[1])
    assert clusters, "the unknown Obamas form a cluster"
    cluster = clusters[0]["cluster_id"]
    # Enrolled later, he is named in those faces, which keep their cluster id.
    assert cli(db, "people", "add", "Barack", str(samples / "obama3.jpg"), "--consent", "test")[0] == 0
    erased = [r[0] for r in rows(db, "SELECT sighting_id FROM sightings WHERE person_id = 1 AND cluster_id = ?",
                                 [cluster])]
    assert len(erased) >= 3
    links = rows(db, "SELECT count(*) FROM audit WHERE subject LIKE '%person:1%'")[0][0]
    assert links > len(erased), "naming is audited face by face"
    code, output = cli(db, "forget", "Barack")
    assert code == 0, output
    left = json.loads(cli(db, "clusters", "--json", "--min-size", "1")[1])
    assert cluster not in [c["cluster_id"] for c in left], "their cluster is gone"
    assert rows(db, f"SELECT count(*) FROM sightings WHERE cluster_id IS NOT NULL AND sighting_id IN "
                    f"({', '.join(map(str, erased))})") == [(0,)]
    code, again = cli(db, "clusters", "name", str(cluster), "Someone", "--consent", "test")
    assert code == 4, again
    assert rows(db, "SELECT count(*) FROM sightings WHERE person_id IS NOT NULL") == [(0,)]
    audit = rows(db, "SELECT action, subject FROM audit WHERE subject LIKE '%person:1%'")
    assert audit == [("forget", "person:1")], "only the record of the erasure itself names them"
    assert f"{links} audit links" in output


def test_purged_faces_leave_their_clusters(db: Target, cams: Path, samples: Path) -> None:
    for n, name in enumerate(["obama_partial_face.jpg", "obama3.jpg"]):
        shutil.copy(samples / name, cams / "garden" / f"more{n}.jpg")
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0
    assert cli(db, "cluster")[0] == 0
    assert json.loads(cli(db, "clusters", "--json")[1]), "the unknown Obamas form a cluster"
    execute(db, "UPDATE images SET ingested_at = ?", [datetime.now() - timedelta(days=400)])
    assert cli(db, "purge")[0] == 0
    assert json.loads(cli(db, "clusters", "--json", "--min-size", "1")[1]) == []
    assert rows(db, "SELECT count(*) FROM sightings WHERE cluster_id IS NOT NULL") == [(0,)]


@pytest.mark.parametrize("engine", ["duckdb"])
def test_unname_says_which_near_duplicates_lost_the_name_and_audits_them(
    db: Target, cams: Path, samples: Path
) -> None:
    from PIL import Image

    Image.open(samples / "obama.jpg").save(cams / "garden" / "again.png")  # the same face, another file
    assert cli(db, "people", "add", "Barack", str(samples / "obama3.jpg"), "--consent", "test")[0] == 0
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0
    a, twin = (r[0] for r in rows(db, """SELECT s.sighting_id FROM sightings s JOIN images i USING (image_id)
                                          WHERE i.uri LIKE '%a.jpg' OR i.uri LIKE '%again.png' ORDER BY i.uri"""))
    assert rows(db, "SELECT person_id FROM sightings WHERE sighting_id IN (?, ?)", [a, twin]) == [(1,), (1,)]
    code, output = cli(db, "sightings", "unname", str(a))
    assert code == 0, output
    assert f"sightings {twin}" in output, output
    assert rows(db, "SELECT person_id FROM sightings WHERE sighting_id = ?", [twin]) == [(None,)]
    audit = rows(db, "SELECT action, subject FROM audit WHERE action = 'unname' ORDER BY subject")
    assert sorted(audit) == sorted([("unname", f"sighting:{a} person:1"), ("unname", f"sighting:{twin} person:1")])
    # identify lists each face whose name it changes, a name taken back included.
    execute(db, "UPDATE sightings SET person_id = 1 WHERE sighting_id = ?", [twin])
    code, output = cli(db, "identify")
    assert code == 0 and f"sighting {twin}: person 1 -> unknown" in output, output
    assert rows(db, "SELECT count(*) FROM audit WHERE action = 'unname' AND actor = 'identify'") == [(1,)]


def test_forget_of_a_person_named_from_a_camera_face_keeps_the_other_faces_of_that_frame(
    db: Target, tmp_path: Path, samples: Path
) -> None:
    """Only the owner's reference photos go whole with a person: a camera frame one of whose faces
    was named keeps the stranger beside them (forget deleted the whole frame, both faces)."""
    from PIL import Image

    from facelake import identities

    left, right = Image.open(samples / "obama.jpg").convert("RGB"), Image.open(samples / "biden.jpg").convert("RGB")
    frame = Image.new("RGB", (left.width + right.width, max(left.height, right.height)))
    frame.paste(left, (0, 0))
    frame.paste(right, (left.width, 0))
    (tmp_path / "cams" / "door").mkdir(parents=True)
    frame.save(tmp_path / "cams" / "door" / "pair.jpg", quality=92)
    assert cli(db, "ingest", str(tmp_path / "cams"), "--workers", "1")[0] == 0
    faces = rows(db, "SELECT sighting_id, box[1] FROM sightings ORDER BY box[1]")
    assert len(faces) == 2, faces
    settings = load_settings(db=db)
    identities.name_face(settings, int(faces[0][0]), "Barack", "test: a public figure")
    identities.forget(settings, "Barack")
    assert rows(db, "SELECT count(*) FROM images") == [(1,)], "the frame stays"
    left_face, right_face = rows(db, "SELECT sighting_id, thumb IS NULL, embedding IS NULL FROM sightings "
                                     "ORDER BY box[1]")
    assert left_face == (faces[0][0], True, True), "the named face is erased"
    assert right_face == (faces[1][0], False, False), "the other face of the frame is kept"

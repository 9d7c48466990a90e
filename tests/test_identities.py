"""People: open-set matching (units), enrollment, naming at ingest, erasure and retention (end to end)."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from facelake.config import load_settings
from facelake.identities.index import index_base, index_paths
from facelake.identities.matching import Gallery
from facelake.store.base import Target

from .conftest import paste
from .dbs import empty, execute, rows
from .test_ingest import cli

# --- the decision rule, on synthetic unit vectors ----------------------------------------------


def _unit(*v: float) -> np.ndarray:
    a = np.array(v, dtype=np.float32)
    return a / np.linalg.norm(a)


def test_gallery_names_only_clear_matches() -> None:
    X = np.stack([_unit(1, 0, 0), _unit(0.9, 0.1, 0), _unit(0, 1, 0)])
    g = Gallery(threshold=0.9, margin=0.05).fit(X, np.array([7, 7, 9]))
    near_7, near_9, nobody = _unit(0.95, 0.05, 0.05), _unit(0.02, 1, 0.05), _unit(0, 0, 1)
    between = _unit(1, 1, 0)  # 0.707 to both people: below threshold
    m = g.match(np.stack([near_7, near_9, nobody, between]))
    assert [x.person for x in m] == [7, 9, None, None]
    assert m[0].score == pytest.approx(float(near_7 @ X[0]), abs=1e-6), "1-NN: the closest enrolled face"


def test_gallery_margin_keeps_lookalikes_unknown() -> None:
    X = np.stack([_unit(1, 0.05, 0), _unit(1, -0.05, 0)])
    g = Gallery(threshold=0.5, margin=0.05).fit(X, np.array([1, 2]))
    probe = _unit(1, 0.01, 0)
    (m,) = g.match(probe[None])
    assert m.person is None and m.score > 0.99 and m.margin < 0.05
    (m,) = Gallery(threshold=0.5, margin=0.0).fit(X, np.array([1, 2])).match(probe[None])
    assert m.person == 1


def test_empty_gallery_names_nobody() -> None:
    g = Gallery(0.5, 0.0).fit(np.zeros((0, 3), np.float32), np.zeros(0, np.int64))
    assert [m.person for m in g.match(np.stack([_unit(1, 0, 0)]))] == [None]


# --- end to end on real photos -----------------------------------------------------------------


def test_enrollment_needs_consent_and_exactly_one_face(
    db: Path, tmp_path: Path, samples: Path, patches: dict[str, np.ndarray]
) -> None:
    obama = str(samples / "obama.jpg")
    code, output = cli(db, "people", "add", "Barack", obama, "--consent", "   ")
    assert code == 2 and "consent" in output
    noise = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)).save(noise)
    code, output = cli(db, "people", "add", "Nobody", str(noise), "--consent", "asked")
    assert code == 7 and "no face" in output
    group = np.full((500, 1000, 3), 120, dtype=np.uint8)
    paste(group, patches["obama"], 50, 50, 300)
    paste(group, patches["biden"], 600, 80, 220)
    Image.fromarray(group).save(tmp_path / "group.jpg", quality=95)
    code, output = cli(db, "people", "add", "Barack", str(tmp_path / "group.jpg"), "--consent", "asked in person")
    assert code == 2 and "2 faces" in output and "--face" in output
    assert empty(db, "people"), "a refused enrollment writes nothing"
    code, output = cli(db, "people", "add", "Barack", str(tmp_path / "group.jpg"), "--face", "0",
                       "--consent", "asked in person")
    assert code == 0, output
    assert rows(db, "SELECT name, consent_note FROM people") == [("Barack", "asked in person")]
    code, output = cli(db, "people", "add", "Barack", obama, "--consent", "again")
    assert code == 4 and "already enrolled" in output


def test_ingest_names_enrolled_people_and_leaves_others_unknown(db: Target, cams: Path, samples: Path) -> None:
    assert cli(db, "people", "add", "Barack", str(samples / "obama3.jpg"), "--consent", "public figure, test")[0] == 0
    code, output = cli(db, "ingest", str(cams), "--workers", "1")
    assert code == 0, output
    named = rows(db, """SELECT regexp_replace(i.uri, '^.*/', ''), p.name, s.match_score FROM sightings s
                        JOIN images i USING (image_id) LEFT JOIN people p USING (person_id)
                        WHERE i.camera <> 'enrollment' ORDER BY 1""")
    assert [(f, n) for f, n, _ in named] == [("a.jpg", "Barack"), ("b.jpg", None), ("c.jpg", "Barack")]
    assert all(score > 0.9 for _, n, score in named if n) and all(score is None for _, n, score in named if not n)
    audit = rows(db, """SELECT action, count(*) FROM audit GROUP BY 1 ORDER BY 1""")
    assert dict(audit)["identify"] == 2 and dict(audit)["enroll"] == 1
    # Enrolling Biden later and re-identifying names his earlier sighting.
    assert cli(db, "people", "add", "Joe", str(samples / "biden.jpg"), "--consent", "public figure, test")[0] == 0
    assert rows(db, """SELECT p.name FROM sightings s JOIN images i USING (image_id) JOIN people p USING (person_id)
                       WHERE i.uri LIKE '%b.jpg'""") == [("Joe",)]
    code, output = cli(db, "people", "list", "--json")
    people = {p["name"]: p for p in json.loads(output)}
    assert people["Barack"]["sightings"] == 3 and people["Joe"]["enrolled_faces"] == 1
    assert cli(db, "people", "rename", "Joe", "Joseph")[0] == 0
    assert rows(db, "SELECT name FROM people ORDER BY 1") == [("Barack",), ("Joseph",)]


def test_remove_unlinks_and_forget_erases(db: Target, cams: Path, samples: Path) -> None:
    assert cli(db, "people", "add", "Barack", str(samples / "obama3.jpg"), "--consent", "test")[0] == 0
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0
    # biden.jpg is also cams/.../b.jpg: enrolled after the ingest, the same image gets linked.
    assert cli(db, "people", "add", "Joe", str(samples / "biden.jpg"), "--consent", "test")[0] == 0
    code, output = cli(db, "people", "remove", "Joe")
    assert code == 0 and "1 sightings unlinked" in output
    b = rows(db, "SELECT person_id, embedding IS NOT NULL, thumb IS NOT NULL FROM sightings s "
                 "JOIN images i USING (image_id) WHERE i.uri LIKE '%b.jpg'")
    assert b == [(None, True, True)], "removed: unknown again, data kept until retention"
    code, output = cli(db, "forget", "Barack")
    assert code == 0, output
    assert "1 enrollment photos" in output and "2 sightings unlinked" in output
    assert rows(db, "SELECT count(*) FROM people") == [(0,)]
    assert rows(db, "SELECT count(*) FROM enrollments") == [(0,)]
    assert rows(db, "SELECT count(*) FROM images WHERE camera = 'enrollment'") == [(0,)]
    erased = rows(db, """SELECT regexp_replace(i.uri, '^.*/', ''), s.person_id, s.embedding IS NULL, s.thumb IS NULL
                         FROM sightings s JOIN images i USING (image_id) ORDER BY 1""")
    assert erased == [("a.jpg", None, True, True), ("b.jpg", None, False, False), ("c.jpg", None, True, True)]
    assert ("forget", "person:1") in rows(db, "SELECT action, subject FROM audit")
    assert cli(db, "forget", "Barack")[0] == 4, "forgetting twice says there is no such person"


def test_purge_erases_old_unknown_faces_only(db: Target, cams: Path, samples: Path) -> None:
    assert cli(db, "people", "add", "Barack", str(samples / "obama3.jpg"), "--consent", "test")[0] == 0
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0
    execute(db, "UPDATE images SET ingested_at = ?", [datetime.now() - timedelta(days=40)])  # past the retention
    code, output = cli(db, "purge")
    assert code == 0 and "1 unknown faces" in output
    state = rows(db, """SELECT regexp_replace(i.uri, '^.*/', ''), s.embedding IS NULL, s.thumb IS NULL
                        FROM sightings s JOIN images i USING (image_id) WHERE i.camera <> 'enrollment' ORDER BY 1""")
    assert state == [("a.jpg", False, False), ("b.jpg", True, True), ("c.jpg", False, False)]
    assert rows(db, "SELECT count(*) FROM face_contexts c JOIN sightings s USING (sighting_id) "
                    "WHERE s.embedding IS NULL") == [(0,)], "the kept face context expires with the embedding"
    assert rows(db, "SELECT count(*) FROM face_contexts") == [(3,)]
    assert rows(db, "SELECT count(*) FROM audit WHERE action = 'purge'") == [(1,)]
    shutil.copy(samples / "obama2.jpg", cams / "garden" / "again.jpg")
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0
    assert rows(db, "SELECT count(*) FROM sightings WHERE embedding IS NULL") == [(1,)], "fresh faces are kept"


# --- clustering --------------------------------------------------------------------------------


def test_chinese_whispers_groups_separates_and_extends() -> None:
    from bench.baselines import ChineseWhispers
    from facelake.identities.clustering import bcubed

    rng = np.random.default_rng(0)
    centres = np.eye(4, 16, dtype=np.float32)
    X = np.vstack([c + rng.normal(0, 0.05, (5, 16)) for c in centres[:2]] + [centres[2:3]]).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    labels = ChineseWhispers(0.8).fit(X).labels_
    assert len(set(labels[:5])) == 1 and len(set(labels[5:10])) == 1 and labels[0] != labels[5]
    assert labels[10] not in labels[:10], "an outlier stays on its own"
    assert bcubed(["a"] * 5 + ["b"] * 5 + ["c"], list(labels)) == (1.0, 1.0, 1.0)
    # Incremental: grouped faces keep their labels; a new face joins its neighbours' group.
    fixed = np.array([40] * 5 + [41] * 5 + [42] + [-1, -1], dtype=np.int64)
    newcomers = np.vstack([centres[1] + rng.normal(0, 0.05, 16), centres[3]]).astype(np.float32)
    newcomers /= np.linalg.norm(newcomers, axis=1, keepdims=True)
    more = ChineseWhispers(0.8).fit(np.vstack([X, newcomers]), fixed).labels_
    assert list(more[:11]) == list(fixed[:11]) and more[11] == 41 and more[12] > 42
    p, r, _ = bcubed(["a", "a", "b"], [1, 1, 1])
    assert p == pytest.approx(5 / 9) and r == 1.0


def test_cluster_name_merge_and_split(db: Target, cams: Path, samples: Path) -> None:
    shutil.copy(samples / "obama3.jpg", cams / "garden" / "d.jpg")
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0
    code, output = cli(db, "cluster")
    assert code == 0 and "clustered 4 unknown faces (3 new)" in output, "b.jpg, one face of its own, joins no group"
    by_file = dict(rows(db, "SELECT regexp_replace(i.uri, '^.*/', ''), s.cluster_id FROM sightings s "
                            "JOIN images i USING (image_id)"))
    assert by_file["a.jpg"] == by_file["c.jpg"] == by_file["d.jpg"] is not None and by_file["b.jpg"] is None
    listed = json.loads(cli(db, "clusters", "--json")[1])
    assert [(c["cluster_id"], c["faces"]) for c in listed] == [(by_file["a.jpg"], 3)]
    assert cli(db, "cluster")[1].startswith("clustered 4 unknown faces (0 new)"), "a re-run moves nothing"
    # Two more photos of the man in b.jpg (mirrored, cropped): three faces are evidence of a group.
    biden = Image.open(samples / "biden.jpg").convert("RGB")
    biden.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(cams / "garden" / "e.jpg", quality=95)
    biden.crop((10, 10, biden.width - 10, biden.height - 10)).save(cams / "garden" / "f.jpg", quality=95)
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0
    assert cli(db, "cluster")[1].startswith("clustered 6 unknown faces (3 new): 2 groups"), "b.jpg is looked at again"
    by_file = dict(rows(db, "SELECT regexp_replace(i.uri, '^.*/', ''), s.cluster_id FROM sightings s "
                            "JOIN images i USING (image_id)"))
    assert by_file["b.jpg"] == by_file["e.jpg"] == by_file["f.jpg"] not in (None, by_file["a.jpg"])
    # A wrong merge, undone by a split.
    code, output = cli(db, "clusters", "merge", str(by_file["a.jpg"]), str(by_file["b.jpg"]))
    assert code == 0 and "moved 3 faces" in output
    code, output = cli(db, "clusters", "split", str(by_file["a.jpg"]))
    assert code == 0 and "split into" in output
    after = dict(rows(db, "SELECT regexp_replace(i.uri, '^.*/', ''), s.cluster_id FROM sightings s "
                          "JOIN images i USING (image_id)"))
    assert after == by_file, "the split gives each group its id back (the merged-in one too)"
    # The other way round: the second group kept, the first merged into it, then split.
    assert cli(db, "clusters", "merge", str(by_file["b.jpg"]), str(by_file["a.jpg"]))[0] == 0
    assert cli(db, "clusters", "split", str(by_file["b.jpg"]))[0] == 0
    after = dict(rows(db, "SELECT regexp_replace(i.uri, '^.*/', ''), s.cluster_id FROM sightings s "
                          "JOIN images i USING (image_id)"))
    assert after == by_file, "ids of what stays are kept: never swapped"
    # Naming the cluster enrolls its faces as a person.
    code, output = cli(db, "clusters", "name", str(after["a.jpg"]), "Barack", "--consent", "public figure, test")
    assert code == 0, output
    assert rows(db, "SELECT count(*) FROM sightings s JOIN people p USING (person_id) WHERE p.name = 'Barack'") == [(3,)]
    assert rows(db, "SELECT count(*) FROM enrollments") == [(3,)]
    assert cli(db, "clusters", "name", "999", "X", "--consent", "y")[0] == 4


def test_a_run_over_more_faces_than_the_exact_lists_take_groups_real_faces_from_the_graph(
        db: Target, cams: Path, samples: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past ``EXACT_UP_TO`` free faces the neighbour lists come from an HNSW graph (set to 0 here,
    so these four real faces take that path): the same groups as the exact lists give."""
    from facelake.identities import clustering

    shutil.copy(samples / "obama3.jpg", cams / "garden" / "d.jpg")
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0
    monkeypatch.setattr(clustering, "EXACT_UP_TO", 0)
    built: list[int] = []

    class Counted(clustering._GraphNeighbours):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            built.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(clustering, "_GraphNeighbours", Counted)
    code, output = cli(db, "cluster", "--full")
    assert code == 0 and "clustered 4 unknown faces (3 new)" in output and built == [1]
    by_file = dict(rows(db, "SELECT regexp_replace(i.uri, '^.*/', ''), s.cluster_id FROM sightings s "
                            "JOIN images i USING (image_id)"))
    assert by_file["a.jpg"] == by_file["c.jpg"] == by_file["d.jpg"] is not None and by_file["b.jpg"] is None


def test_an_incremental_run_looks_only_at_new_faces_and_the_ungrouped_ones_near_them(
        db: Target, cams: Path, samples: Path) -> None:
    from facelake.identities import cluster

    shutil.copy(samples / "obama3.jpg", cams / "garden" / "d.jpg")
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0
    execute(db, "UPDATE images SET ingested_at = ?", [datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=1)])
    settings = load_settings(db=db)
    first = cluster(settings)
    assert (first.faces, first.clusters, first.new_faces) == (4, 1, 3), "b.jpg stays alone"
    again = cluster(settings)
    assert (again.looked_at, again.new_faces) == (0, 0), "nothing new: b.jpg is not regrouped at every run"
    # One new photo of the man in a.jpg, far from b.jpg: only its face is looked at, and it joins his group.
    later = cams / "garden" / "later"
    later.mkdir()
    Image.open(samples / "obama_partial_face.jpg").convert("RGB").save(later / "x.jpg")
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0
    one = cluster(settings)
    assert (one.looked_at, one.new_faces) == (1, 1)
    # Two more photos of the man in b.jpg: b.jpg is close to them, so it is looked at again and grouped.
    biden = Image.open(samples / "biden.jpg").convert("RGB")
    biden.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(later / "e.jpg", quality=95)
    biden.crop((10, 10, biden.width - 10, biden.height - 10)).save(later / "f.jpg", quality=95)
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0
    third = cluster(settings)
    assert (third.looked_at, third.new_faces, third.clusters) == (3, 3, 2), "e.jpg, f.jpg, and b.jpg near them"
    by_file = dict(rows(db, "SELECT regexp_replace(i.uri, '^.*/', ''), s.cluster_id FROM sightings s "
                            "JOIN images i USING (image_id)"))
    assert by_file["b.jpg"] == by_file["e.jpg"] == by_file["f.jpg"] is not None
    full = cluster(settings, full=True)
    assert full.looked_at == full.faces == 7, "a full run looks at every face"
    # After an edit that leaves older faces ungrouped (a person removed: their faces are unknown
    # again), every ungrouped face is new once more, and the removed person's faces group again.
    execute(db, "UPDATE images SET ingested_at = ?", [datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=1)])
    group = dict(rows(db, "SELECT regexp_replace(i.uri, '^.*/', ''), s.cluster_id FROM sightings s "
                          "JOIN images i USING (image_id)"))["b.jpg"]
    assert cli(db, "clusters", "name", str(group), "Joe", "--consent", "test")[0] == 0
    assert cli(db, "people", "remove", "Joe")[0] == 0
    back = cluster(settings)
    assert back.looked_at == 3 and back.new_faces == 3, back


def test_faces_stored_after_the_count_are_clustered_too(
        db: Target, cams: Path, samples: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a server, other writers store faces between clustering's count and its read: the read
    holds more faces than were counted, already in its first block (a watcher died on that)."""
    from facelake.identities import cluster
    from facelake.store import open_store

    shutil.copy(samples / "obama3.jpg", cams / "garden" / "d.jpg")
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0
    settings = load_settings(db=db)
    with open_store(db) as store:
        kind = type(store.clusters)
    counted = kind.count_unknown

    def before_the_writers(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        faces, groups = counted(self, *args, **kwargs)
        return min(faces, 1), groups

    monkeypatch.setattr(kind, "count_unknown", before_the_writers)
    late = cluster(settings, full=True)
    monkeypatch.undo()
    assert late.looked_at == 4 and late.clusters == 1, late
    assert cluster(settings, full=True).looked_at == 4


def test_the_store_reads_faces_as_numpy_blocks_every_face_once(db: Target, cams: Path, samples: Path) -> None:
    from facelake.identities.matching import model_of
    from facelake.store import open_store

    shutil.copy(samples / "obama3.jpg", cams / "garden" / "d.jpg")
    Image.open(samples / "obama.jpg").convert("RGB").save(cams / "garden" / "group.jpg")  # then two faces in one
    canvas = np.asarray(Image.open(samples / "biden.jpg").convert("RGB")).copy()
    paste(canvas, np.asarray(Image.open(samples / "obama.jpg").convert("RGB")), 0, 0, canvas.shape[1] // 3)
    Image.fromarray(canvas).save(cams / "garden" / "two.jpg")
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0
    settings = load_settings(db=db)
    model = model_of(settings)
    with open_store(db) as store:
        blocks = list(store.clusters.unknown_faces(settings.identify_min_quality, model, settings.min_recognisability,
                                                   size=2))
        batches = list(store.sightings.to_name(model, size=1))
        count = store.clusters.count_unknown(settings.identify_min_quality, model, settings.min_recognisability)
    ids = [int(i) for b in blocks for i in b.sighting_ids]
    assert len(blocks) >= 2 and all(len(b.sighting_ids) <= 2 for b in blocks), "blocks of the asked size"
    assert all(isinstance(b.embeddings, np.ndarray) and b.embeddings.dtype == np.float32
               and b.embeddings.shape == (len(b.sighting_ids), 320) for b in blocks)
    assert len(ids) == len(set(ids)) == count[0] == len(rows(db, "SELECT sighting_id FROM sightings "
                                                            "WHERE embedding IS NOT NULL AND person_id IS NULL "
                                                            f"AND quality >= {settings.identify_min_quality}"))
    faces = [f for batch in batches for f in batch]
    assert len(faces) == len({f.sighting_id for f in faces}) == rows(db, "SELECT count(*) FROM sightings "
                                                                       "WHERE embedding IS NOT NULL")[0][0]
    assert all(isinstance(f.embedding, np.ndarray) and f.embedding.dtype == np.float32 for f in faces)
    images = [{f.image_id for f in batch} for batch in batches]
    assert sum(len(i) for i in images) == len(set().union(*images)), "an image is never split across two batches"
    assert any(len(batch) > 1 for batch in batches), "the photo of two faces comes whole"


def test_naming_a_cluster_matches_only_what_it_can_change_and_agrees_with_a_full_identify(
        db: Target, cams: Path, samples: Path) -> None:
    from facelake.identities.people import _reach

    shutil.copy(samples / "obama3.jpg", cams / "garden" / "d.jpg")
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0
    assert cli(db, "cluster")[0] == 0
    (cluster,) = {c for (c,) in rows(db, "SELECT cluster_id FROM sightings WHERE cluster_id IS NOT NULL")}
    assert cli(db, "clusters", "name", str(cluster), "Barack", "--consent", "test")[0] == 0
    named = rows(db, "SELECT sighting_id, person_id FROM sightings ORDER BY 1")
    code, output = cli(db, "identify")
    assert code == 0 and rows(db, "SELECT sighting_id, person_id FROM sightings ORDER BY 1") == named
    assert "named, 0 changed" in output, "a full identify finds nothing the narrow one missed"
    from facelake.store import open_store

    settings = load_settings(db=db)
    biden = rows(db, "SELECT s.sighting_id FROM sightings s JOIN images i USING (image_id) WHERE i.uri LIKE '%b.jpg'")
    with open_store(db) as store:
        reach = _reach(store, settings, [biden[0][0]], [], {})
    assert reach is not None and len(reach) == 1, "a face like nobody else's reaches only its own image"


# --- search ------------------------------------------------------------------------------------


def test_search_finds_past_sightings_and_survives_a_lost_index(
    db: Target, engine: str, cams: Path, samples: Path
) -> None:
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0
    index_file = index_paths(index_base(load_settings(db=db)))[0]
    if engine == "postgres":
        assert not index_file.exists(), "pgvector searches in SQL: no index of our own"
    else:
        assert index_file.exists(), "ingest keeps the index next to the database"
    code, output = cli(db, "search", str(samples / "obama3.jpg"), "--top", "3", "--json")
    assert code == 0, output
    hits = json.loads(output)
    assert [Path(h["uri"]).name for h in hits[:2]] in (["a.jpg", "c.jpg"], ["c.jpg", "a.jpg"])
    assert Path(hits[2]["uri"]).name == "b.jpg" and hits[1]["score"] > hits[2]["score"]
    assert rows(db, "SELECT count(*) FROM audit WHERE action = 'search'") == [(1,)]
    index_file.unlink(missing_ok=True)
    assert json.loads(cli(db, "search", str(samples / "obama3.jpg"), "--top", "3", "--json")[1]) == hits
    # New sightings are picked up incrementally.
    shutil.copy(samples / "obama_partial_face2.jpg", cams / "garden" / "e.jpg")
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0
    names = [Path(h["uri"]).name for h in json.loads(cli(db, "search", str(samples / "obama3.jpg"), "--json")[1])]
    assert "e.jpg" in names[:3]


def test_forget_removes_index_entries(db: Target, engine: str, cams: Path, samples: Path) -> None:
    assert cli(db, "people", "add", "Barack", str(samples / "obama3.jpg"), "--consent", "test")[0] == 0
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0
    code, output = cli(db, "forget", "Barack")
    assert code == 0, output
    assert ("3 index entries" in output) == (engine != "postgres"), "pgvector's index follows the table itself"
    hits = json.loads(cli(db, "search", str(samples / "obama2.jpg"), "--json")[1])
    assert [Path(h["uri"]).name for h in hits] == ["b.jpg"], "only the unknown face is left to find"

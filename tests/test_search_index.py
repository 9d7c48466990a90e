"""The face index finds every stored face: its own embedding always returns it (recall@10 = 1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facelake.identities.index import FaceIndex


def test_every_face_is_found_by_its_own_embedding(tmp_path: Path) -> None:
    """Built with several threads, usearch's graph left a few faces unreachable (2-5 of 3,000 in 5 of
    6 builds): search never returned them, not even for their own photo."""
    rng = np.random.default_rng(7)
    n, missed = 3000, []
    for trial in range(3):
        # Faces come in groups (the same people again and again), as in a year of one door's camera.
        centres = rng.normal(size=(n // 5, 128)).astype(np.float32)
        vectors = centres[rng.integers(0, len(centres), n)] + 0.35 * rng.normal(size=(n, 128)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        index = FaceIndex(tmp_path / f"t{trial}.duckdb", "test", 128)
        ids = np.arange(1, n + 1, dtype=np.int64)
        for start in range(0, n, 1000):  # added in chunks, as sync_index does
            index.add(ids[start:start + 1000], vectors[start:start + 1000])
        missed += [int(i) for i, v in zip(ids, vectors) if int(i) not in {h.sighting_id for h in index.search(v, 10)}]
    assert missed == [], f"{len(missed)} faces never returned for their own embedding"


def test_a_server_maps_the_index_and_lets_go_of_a_file_an_erasure_wipes(tmp_path: Path) -> None:
    """A server's index is mapped from its file, not read into the process (a million faces held
    ~470 MB of serve's memory, twice while a sync ran). An erasure overwrites the old file in place
    (its vectors are the erased faces): the server lets go of it first, searches nothing while the
    file is replaced, then maps the new one, where the erased face is gone."""
    from facelake import load_settings
    from facelake.identities.index import LiveIndex, index_paths
    from facelake.identities.matching import dim_of, model_of

    settings = load_settings(db=tmp_path / "year.duckdb")
    model, dim = model_of(settings), dim_of(settings)
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(400, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(1, 401, dtype=np.int64)
    built = FaceIndex(tmp_path / "year.duckdb", model, dim)
    built.add(ids, vectors)
    built.synced_to = 400
    built.save()
    LiveIndex._all.clear()
    try:
        live = LiveIndex.of(settings)
        hits, synced = live.search(vectors[0], 3)
        assert hits[0].sighting_id == 1 and synced == 400
        mapped = live.current()
        assert mapped is not None and mapped.viewed, "mapped from the file, not read into memory"
        erased = FaceIndex(tmp_path / "year.duckdb", model, dim)
        assert not erased.viewed
        erased.clear()
        erased.add(ids[1:], vectors[1:])
        erased.synced_to = 400
        with LiveIndex.letting_go(index_paths(tmp_path / "year.duckdb")[0]):
            assert live.search(vectors[0], 3) == ([], 0), "no search reads a file being replaced"
        erased.save(wipe_old=True)
        hits, synced = live.search(vectors[0], 3)
        assert 1 not in {h.sighting_id for h in hits} and synced == 400
        assert live.search(vectors[5], 1)[0][0].sighting_id == 6
    finally:
        LiveIndex._all.clear()


def test_a_server_keeps_new_faces_beside_the_mapped_index_without_rewriting_it(tmp_path: Path) -> None:
    """New faces are taken in by the background thread and kept in memory beside the mapped file:
    writing them into the file reads the whole index (a second ~470 MB copy at a million faces),
    so that waits for MERGE_AT of them. Found by a search meanwhile, all the same."""
    import json
    import time

    from facelake import load_settings
    from facelake.identities.index import LiveIndex, index_paths
    from facelake.identities.matching import dim_of, model_of
    from facelake.store import open_store

    from .dbs import execute

    db = tmp_path / "year.duckdb"
    settings = load_settings(db=db)
    model, dim = model_of(settings), dim_of(settings)
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(150, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with open_store(db):
        pass  # the tables
    for i, v in enumerate(vectors, start=1):
        execute(db, """INSERT INTO sightings (sighting_id, image_id, face_index, box, landmarks, det_score, quality,
                           model, embedding, seen_at, camera)
                       VALUES (?, ?, 0, [0, 0, 1, 1], [[0, 0], [0, 0], [0, 0], [0, 0], [0, 0]], 0.9, 0.9, ?, ?,
                               TIMESTAMP '2024-01-01', 'door')""", [i, f"img{i}", model, v.tolist()])
    built = FaceIndex(db, model, dim)
    built.add(np.arange(1, 101, dtype=np.int64), vectors[:100])
    built.synced_to = 100
    built.save()
    state = index_paths(db)[1]
    LiveIndex._all.clear()
    try:
        live = LiveIndex.of(settings)
        with open_store(db, read_only=True) as store:
            assert store.sightings.count_embedded_after(model, live.search(vectors[120], 1)[1]) == 50
        live.catch_up()
        deadline = time.monotonic() + 30
        while live.search(vectors[120], 1)[1] < 150 and time.monotonic() < deadline:
            time.sleep(0.05)
        hits, covered = live.search(vectors[120], 3)
        assert covered == 150 and hits[0].sighting_id == 121 and hits[0].score > 0.99
        assert live.search(vectors[7], 1)[0][0].sighting_id == 8, "the mapped file answers as before"
        assert json.loads(state.read_text())["synced_to"] == 100, "the file was not rewritten for 50 faces"
    finally:
        LiveIndex._all.clear()

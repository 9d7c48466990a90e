"""Decisions people can trust: must-differ per image, quality-aware thresholds, "not this person",
several photos per person and `people import` — unit tests on synthetic vectors and end to end."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facelake.config import Settings
from facelake.identities.matching import CALIBRATED, Gallery, GalleryFile, Namer, Thresholds, thresholds
from facelake.identities.stages import NamingStage
from facelake.store.base import Target
from facelake.vision.models import FUSION

from .conftest import paste
from .dbs import rows
from .test_ingest import cli

T = Thresholds(match=0.5, identify=0.6, cluster=0.6, low_quality_extra=0.2, duplicate=0.9, margin=0.0)


def unit(*v: float) -> np.ndarray:
    a = np.array(v, dtype=np.float32)
    return a / np.linalg.norm(a)


def namer(**kw: object) -> Namer:
    gallery = Gallery(T.identify, 0.0).fit(np.stack([unit(1, 0, 0), unit(0, 1, 0)]), np.array([1, 2]))
    return Namer(gallery, T, min_quality=0.1, **kw)  # type: ignore[arg-type]


def test_two_faces_of_one_image_never_get_the_same_person() -> None:
    faces = np.stack([unit(1, 0.3, 0), unit(1, 0.1, 0)])  # both look like person 1; the second more so
    assert [p for p, _ in namer().name_image(faces, [1.0, 1.0])] == [None, 1]
    # A person already in the image (its enrollment face) is not given to another face.
    assert namer().name_image(faces[1:], [1.0], taken={1}) == [(None, None)]


def test_low_quality_faces_need_a_higher_score() -> None:
    face = unit(1, 0.8, 0.5)  # ~0.69 to person 1 (0.55 to person 2): named at full quality only
    n = namer()
    assert n.required(1.0) == T.identify and n.required(0.0) == T.identify + T.low_quality_extra
    similar = float(face @ unit(1, 0, 0))
    assert n.name_image(face[None], [1.0])[0][0] == 1
    assert n.required(0.15) > similar and n.name_image(face[None], [0.15]) == [(None, None)]


def test_a_sharp_face_just_over_the_threshold_is_a_look_alike() -> None:
    """wider_dev: a sharp stranger (quality 0.84) scored 0.8811 against an enrolled face, over the
    fused threshold 0.879; sharp photos of one person score 0.915 or more, so it stays unknown,
    while a blurred CCTV face at that score (quality 0.5 or less) is still named."""
    t = CALIBRATED[FUSION]
    enrolled = unit(1, 0, 0)
    angle = np.arccos(0.8811)
    face = np.array([np.cos(angle), np.sin(angle), 0], dtype=np.float32)
    n = Namer(Gallery(t.identify, t.margin).fit(enrolled[None], np.array([1])), t, min_quality=0.13)
    assert n.name_image(face[None], [0.84]) == [(None, None)]
    assert n.name_image(face[None], [0.5])[0][0] == 1
    assert n.required(0.5) == t.identify and n.required(1.0) == t.identify + t.sharp_extra


def _crowd(people: int, dim: int = 256) -> np.ndarray:
    """``people`` enrolled faces that look nothing alike (orthonormal rows)."""
    q, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(dim, people)))
    return q.T.astype(np.float32)


def _at(enrolled: np.ndarray, similarity: float, away: np.ndarray) -> np.ndarray:
    """A face scoring ``similarity`` against ``enrolled`` (``away`` orthogonal to every enrolled face)."""
    return (similarity * enrolled + np.sqrt(1 - similarity**2) * away).astype(np.float32)


def test_a_larger_gallery_needs_a_higher_score_for_the_same_false_accept_rate() -> None:
    """wider_dev, 100 clear faces enrolled: 24 strangers got a name with the fixed threshold, 0 with
    20. A stranger just over the calibrated bar stays unknown in a gallery of 200 people, a true
    match far above it is still named, and with up to ``gallery_reference`` people the rule is the
    calibrated one."""
    t = CALIBRATED[FUSION]
    assert t.gallery_extra > 0 and t.gallery_reference == 20
    enrolled = _crowd(201)
    away = enrolled[200]  # orthogonal to every enrolled face
    stranger = _at(enrolled[0], t.identify + 0.003, away)
    same = _at(enrolled[0], 0.95, away)

    def gallery_of(n: int) -> Namer:
        return Namer(Gallery(t.identify, t.margin).fit(enrolled[:n], np.arange(n)), t, min_quality=0.13)

    few, reference, many = gallery_of(5), gallery_of(20), gallery_of(200)
    assert few.required(0.5) == reference.required(0.5) == t.identify, "up to 20 people: the calibrated bar"
    assert few.name_image(stranger[None], [0.5])[0][0] == 0 == reference.name_image(stranger[None], [0.5])[0][0]
    assert many.required(0.5) == pytest.approx(t.identify + t.gallery_extra), "tenfold the people: one step"
    assert many.required(0.2) - few.required(0.2) == pytest.approx(t.gallery_extra), "every quality's bar rises alike"
    assert many.name_image(stranger[None], [0.5]) == [(None, None)]
    assert many.name_image(same[None], [0.5])[0][0] == 0
    assert gallery_of(50).required(0.5) < gallery_of(100).required(0.5) < many.required(0.5)


def test_a_gallery_file_is_named_with_its_size_like_the_store(tmp_path: Path) -> None:
    """The Cloud Function names with a gallery read from a file: the same rise applies there."""
    t = CALIBRATED[FUSION]
    enrolled = _crowd(201)
    people = np.arange(200, dtype=np.int64)
    file = GalleryFile(enrolled[:200], people, {int(i): f"person {i}" for i in people}, FUSION, t.identify, t.margin)
    stage = NamingStage(Settings(db=tmp_path / "facelake.duckdb"))
    stage.use_gallery(GalleryFile.from_bytes(file.to_bytes()).gallery())
    assert stage.namer is not None and stage.namer.required(0.5) == pytest.approx(t.identify + t.gallery_extra)
    stranger = _at(enrolled[7], t.identify + 0.003, enrolled[200])
    assert stage.namer.name_image(stranger[None], [0.5]) == [(None, None)]
    assert thresholds(Settings(identify_gallery_extra=0.0)).gallery_extra == 0.0
    fixed = NamingStage(Settings(db=tmp_path / "facelake.duckdb", identify_gallery_extra=0.0))
    fixed.use_gallery(file.gallery())
    assert fixed.namer is not None and fixed.namer.name_image(stranger[None], [0.5])[0][0] == 7, "0: a fixed bar"


def test_a_new_person_in_a_gallery_past_its_reference_size_is_matched_against_every_image(
        db: Target, cams: Path, samples: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Naming one face as a new person raises every bar, so faces far from it can lose their
    names: the narrow identify after it (which looks only near the new face) must agree with a
    full one. Here the bar rises past any score from the second person on (reference 1)."""
    from facelake import load_settings
    from facelake.identities import name_face

    monkeypatch.setitem(CALIBRATED, FUSION, replace(CALIBRATED[FUSION], gallery_reference=1, gallery_extra=1.0))
    assert cli(db, "people", "add", "Barack", str(samples / "obama3.jpg"), "--consent", "test")[0] == 0
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0
    obama = "SELECT count(s.person_id) FROM sightings s JOIN images i USING (image_id) WHERE i.uri NOT LIKE '%b.jpg' " \
            "AND i.camera IN ('frontdoor', 'garden')"
    assert rows(db, obama) == [(2,)], "one person enrolled: the calibrated bar"
    biden = rows(db, "SELECT s.sighting_id FROM sightings s JOIN images i USING (image_id) WHERE i.uri LIKE '%b.jpg'")
    name_face(load_settings(db=db), biden[0][0], "Joe", "test")
    assert rows(db, obama) == [(0,)], "two people: every bar rose, the far images were matched again"
    code, output = cli(db, "identify")
    assert code == 0 and "0 changed" in output, output


def test_removing_a_person_from_a_gallery_past_its_reference_size_names_what_the_lower_bars_allow(
        db: Target, cams: Path, samples: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One person fewer lowers every bar: ``people remove`` matches every face again, so the names
    stored agree with a full identify at once (they waited for the next one)."""
    from facelake import load_settings
    from facelake.identities import name_face

    monkeypatch.setitem(CALIBRATED, FUSION, replace(CALIBRATED[FUSION], gallery_reference=1, gallery_extra=1.0))
    assert cli(db, "people", "add", "Barack", str(samples / "obama3.jpg"), "--consent", "test")[0] == 0
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0
    obama = "SELECT count(s.person_id) FROM sightings s JOIN images i USING (image_id) WHERE i.uri NOT LIKE '%b.jpg' " \
            "AND i.camera IN ('frontdoor', 'garden')"
    biden = rows(db, "SELECT s.sighting_id FROM sightings s JOIN images i USING (image_id) WHERE i.uri LIKE '%b.jpg'")
    name_face(load_settings(db=db), biden[0][0], "Joe", "test")
    assert rows(db, obama) == [(0,)], "two people: every bar rose past Barack's faces"
    code, output = cli(db, "people", "remove", "Joe")
    assert code == 0, output
    assert rows(db, obama) == [(2,)], "one person again: the calibrated bar names Barack's faces at once"
    code, output = cli(db, "identify")
    assert code == 0 and "0 changed" in output, output


def test_a_rejected_face_and_its_near_duplicates_are_not_named_again() -> None:
    face = unit(1, 0.2, 0)
    near = unit(1, 0.25, 0)
    other = unit(1, -0.3, 0.2)
    n = namer(rejected=face[None], rejected_people=np.array([1]))
    assert [p for p, _ in n.name_image(np.stack([near, other]), [1.0, 1.0])] == [None, 1]


def test_unname_is_remembered_through_identify(db: Target, tmp_path: Path, cams: Path, samples: Path) -> None:
    assert cli(db, "people", "add", "Barack", str(samples / "obama3.jpg"), "--consent", "test")[0] == 0
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0
    sid = rows(db, "SELECT s.sighting_id FROM sightings s JOIN images i USING (image_id) WHERE i.uri LIKE '%a.jpg'")[0][0]
    code, output = cli(db, "sightings", "unname", str(sid))
    assert code == 0 and "remembered" in output
    assert cli(db, "identify")[0] == 0
    assert rows(db, f"SELECT person_id FROM sightings WHERE sighting_id = {sid}") == [(None,)]
    # The same bytes again elsewhere are the same image; a re-encoded copy is a near-duplicate face.
    Image.open(cams / "frontdoor" / "2024-05-01" / "a.jpg").save(cams / "garden" / "a-copy.jpg", quality=90)
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0
    assert rows(db, "SELECT s.person_id FROM sightings s JOIN images i USING (image_id) "
                    "WHERE i.uri LIKE '%a-copy.jpg'") == [(None,)]
    enrolled = rows(db, "SELECT sighting_id FROM enrollments")[0][0]
    assert cli(db, "sightings", "unname", str(enrolled))[0] == 4, "an enrollment photo is removed, not unnamed"
    assert cli(db, "forget", "Barack")[0] == 0
    assert rows(db, "SELECT count(*) FROM rejections") == [(0,)], "erasure takes the corrections too"


def test_a_duplicated_face_in_one_image_is_named_once(db: Target, tmp_path: Path, samples: Path,
                                                      patches: dict[str, np.ndarray]) -> None:
    assert cli(db, "people", "add", "Barack", str(samples / "obama3.jpg"), "--consent", "test")[0] == 0
    canvas = np.full((500, 1000, 3), 120, dtype=np.uint8)
    paste(canvas, patches["obama"], 40, 40, 300)
    paste(canvas, patches["obama"], 560, 60, 280)
    (tmp_path / "cam").mkdir()
    Image.fromarray(canvas).save(tmp_path / "cam" / "twice.jpg", quality=95)
    assert cli(db, "ingest", str(tmp_path / "cam"), "--workers", "1")[0] == 0
    named = rows(db, "SELECT s.person_id FROM sightings s JOIN images i USING (image_id) "
                     "WHERE i.camera = 'cam' ORDER BY s.face_index")
    assert len(named) == 2 and sorted(p is None for (p,) in named) == [False, True]
    assert cli(db, "identify")[0] == 0
    assert sum(p is not None for (p,) in rows(db, "SELECT s.person_id FROM sightings s JOIN images i "
                                                  "USING (image_id) WHERE i.camera = 'cam'")) == 1


def test_people_import_enrolls_a_folder_per_person_and_adds_photos(db: Target, tmp_path: Path, samples: Path) -> None:
    people = tmp_path / "people"
    (people / "Barack Obama").mkdir(parents=True)
    (people / "Joe Biden").mkdir()
    shutil.copy(samples / "obama.jpg", people / "Barack Obama" / "1.jpg")
    shutil.copy(samples / "obama2.jpg", people / "Barack Obama" / "2.jpg")
    shutil.copy(samples / "biden.jpg", people / "Joe Biden" / "1.jpg")
    assert cli(db, "people", "import", str(people))[0] == 2, "a consent note is required"
    code, output = cli(db, "people", "import", str(people), "--consent", "family, asked 2024-05-01")
    assert code == 0, output
    assert rows(db, "SELECT p.name, count(*) FROM people p JOIN enrollments e USING (person_id) GROUP BY 1 ORDER BY 1") \
        == [("Barack Obama", 2), ("Joe Biden", 1)]
    shutil.copy(samples / "obama3.jpg", people / "Barack Obama" / "3.jpg")
    assert cli(db, "people", "import", str(people), "--consent", "family")[0] == 0
    assert rows(db, "SELECT count(*) FROM people") == [(2,)]
    assert rows(db, "SELECT count(*) FROM enrollments e JOIN people p USING (person_id) "
                    "WHERE p.name = 'Barack Obama'") == [(3,)]
    # A folder with a photo showing no single face enrolls nobody from it.
    (people / "Nobody").mkdir()
    Image.fromarray(np.full((200, 200, 3), 90, dtype=np.uint8)).save(people / "Nobody" / "x.jpg")
    assert cli(db, "people", "import", str(people), "--consent", "family")[0] == 7
    assert rows(db, "SELECT count(*) FROM people") == [(2,)]
    shutil.rmtree(people / "Nobody")
    # A photo outside the people's folders, or a folder whose name is no name, is refused by name.
    shutil.copy(samples / "biden.jpg", people / "loose.jpg")
    code, output = cli(db, "people", "import", str(people), "--consent", "family")
    assert code == 2 and "loose.jpg outside the people's folders" in output, output
    (people / "loose.jpg").unlink()
    (people / "   ").mkdir()
    shutil.copy(samples / "biden.jpg", people / "   " / "1.jpg")
    code, output = cli(db, "people", "import", str(people), "--consent", "family")
    assert code == 2 and f"{people / '   '}: the person's name must not be empty" in output, output
    assert rows(db, "SELECT count(*) FROM people") == [(2,)]


def chain(n: int, step: float) -> np.ndarray:
    """Unit vectors along an arc: neighbours ``step`` radians apart, the ends far apart."""
    angles = np.arange(n) * step
    return np.stack([np.cos(angles), np.sin(angles), np.zeros(n)], axis=1).astype(np.float32)


def test_centroid_clustering_does_not_chain_strangers_where_chinese_whispers_does() -> None:
    from bench.baselines import ChineseWhispers
    from facelake.identities.clustering import CentroidClustering

    X = chain(40, 0.08)  # neighbours at cos 0.997, the ends opposite: different people all along

    def widest(labels: np.ndarray) -> float:
        """The least similar pair inside any one cluster (-1: a face left alone is in none)."""
        return min(float((X[labels == c] @ X[labels == c].T).min()) for c in set(labels.tolist()) - {-1})

    assert widest(ChineseWhispers(0.95).fit(X).labels_) < 0.5, "single links chain faces that look nothing alike"
    assert widest(CentroidClustering(0.95).fit(X).labels_) > 0.8


def test_centroid_clustering_keeps_two_faces_of_one_image_apart_and_fixed_labels() -> None:
    from facelake.identities.clustering import CentroidClustering

    # min_samples=1: every face may found a group (the rule before the density rule).
    X = np.stack([unit(1, 0, 0), unit(1, 0.01, 0), unit(1, 0.02, 0), unit(0, 1, 0)])
    labels = CentroidClustering(0.9, min_samples=1).fit(X, groups=["img1", "img1", "img2", "img3"]).labels_
    assert labels[0] != labels[1] and labels[3] not in labels[:3]
    fixed = np.array([7, -1, -1, -1])
    again = CentroidClustering(0.9, min_samples=1).fit(X, fixed, groups=["a", "b", "c", "d"]).labels_
    assert again[0] == 7 and again[1] == 7 and again[2] == 7 and again[3] > 7


def test_a_group_starts_only_from_three_mutually_close_faces_of_different_images() -> None:
    from facelake.identities.clustering import CentroidClustering

    # A look-alike pair (strangers who resemble each other) is no evidence: both stay alone.
    pair = np.stack([unit(1, 0, 0), unit(1, 0.05, 0), unit(0, 1, 0)])
    assert CentroidClustering(0.9).fit(pair).labels_.tolist() == [-1, -1, -1]
    # Three mutually close faces start a group; a fourth joins it by its centre; the outlier stays alone.
    three = np.stack([unit(1, 0, 0), unit(1, 0.05, 0), unit(1, 0, 0.05), unit(1, 0.03, 0.03), unit(0, 1, 0)])
    labels = CentroidClustering(0.9).fit(three).labels_
    assert len(set(labels[:4].tolist())) == 1 and labels[0] >= 0 and labels[4] == -1
    # Three faces of which two come from one image are two people: no group.
    assert (CentroidClustering(0.9).fit(three[:3], groups=["a", "a", "b"]).labels_ == -1).all()
    # One look-alike cannot bridge: A-B and B-C are close, A-C are not, so no three are mutually close.
    bridge = np.stack([unit(1, 0, 0), unit(1, 0.45, 0), unit(1, 0.9, 0)])
    assert float(bridge[0] @ bridge[1]) > 0.9 > float(bridge[0] @ bridge[2])
    assert (CentroidClustering(0.9).fit(bridge).labels_ == -1).all()
    # A group of one kept from an earlier run is no evidence either: its face is free again.
    again = CentroidClustering(0.9).fit(pair, np.array([5, -1, -1])).labels_
    assert again.tolist() == [-1, -1, -1]


def _people(rng: np.random.Generator, n_people: int, faces: int, dim: int, spread: float) -> np.ndarray:
    """``faces`` unit vectors around each of ``n_people`` random centres, person by person."""
    centres = rng.normal(size=(n_people, dim))
    X = np.repeat(centres / np.linalg.norm(centres, axis=1, keepdims=True), faces, axis=0)
    X = X + rng.normal(scale=spread, size=X.shape)
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


def test_incremental_clustering_from_group_sums_decides_as_a_run_over_every_face() -> None:
    from facelake.identities.clustering import CentroidClustering, KnownGroups

    rng = np.random.default_rng(3)
    X = _people(rng, 12, 8, 32, 0.05)
    images = [f"img{i}" for i in rng.integers(0, 60, len(X))]
    quality = rng.random(len(X)).astype(np.float32)
    first = CentroidClustering(0.85).fit(X[:60], groups=images[:60], quality=quality[:60]).labels_
    assert (first >= 0).sum() > 30
    fixed = np.concatenate([first, np.full(len(X) - 60, -1)])
    everything = CentroidClustering(0.85).fit(X, fixed, groups=images, quality=quality).labels_
    # The same run given only the new faces and the old groups as sums, sizes and images held.
    ids, sizes = np.unique(first[first >= 0], return_counts=True)
    kept = ids[sizes >= 2]
    known = KnownGroups(kept, np.stack([X[:60][first == k].sum(axis=0) for k in kept]),
                        np.array([(first == k).sum() for k in kept]),
                        [{images[i] for i in np.nonzero(first == k)[0]} for k in kept])
    free = np.concatenate([np.nonzero(~np.isin(first, kept))[0], np.arange(60, len(X))])
    alone = CentroidClustering(0.85).fit(X[free], groups=[images[i] for i in free], quality=quality[free],
                                         known=known, ties=free).labels_
    assert alone.tolist() == everything[free].tolist()
    assert (everything[:60][np.isin(first, kept)] == first[np.isin(first, kept)]).all(), "old groups never move"


def test_clustering_one_large_group_holds_no_neighbour_lists_of_all_pairs() -> None:
    import tracemalloc

    from facelake.identities.clustering import CentroidClustering

    # 4,000 faces of one person: every pair is close. Listing every face's neighbours up front
    # held 16 million pairs (hundreds of MB as Python lists); a face that joins the group by its
    # centre never needs its neighbours.
    X = _people(np.random.default_rng(4), 1, 4000, 16, 0.01)
    tracemalloc.start()
    labels = CentroidClustering(0.9).fit(X, quality=np.ones(len(X), np.float32)).labels_
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert (labels == labels[0]).all() and labels[0] >= 0
    assert peak < 60e6, f"peak {peak / 1e6:.0f} MB"


def test_a_very_close_pair_of_clear_faces_starts_a_group_but_an_unclear_or_merely_close_pair_does_not() -> None:
    """A repeat visitor seen twice: far closer than look-alikes get, both clearly recognisable."""
    from facelake.identities.clustering import CentroidClustering

    twice = np.stack([unit(1, 0, 0), unit(1, 0.1, 0), unit(0, 1, 0)])  # 0.995 alike, and a stranger
    look_alikes = np.stack([unit(1, 0, 0), unit(1, 0.4, 0), unit(0, 1, 0)])  # 0.93: over 0.9, under 0.98
    clear = np.array([True, True, True])
    rule = CentroidClustering(0.9, pair_threshold=0.98)
    labels = rule.fit(twice, clear=clear).labels_
    assert labels[0] == labels[1] >= 0 and labels[2] == -1
    assert (rule.fit(look_alikes, clear=clear).labels_ == -1).all()
    assert (rule.fit(twice, clear=np.array([True, False, True])).labels_ == -1).all(), "one face unclear"
    assert (rule.fit(twice, groups=["a", "a", "b"], clear=clear).labels_ == -1).all(), "one image: two people"
    assert (CentroidClustering(0.9).fit(twice, clear=clear).labels_ == -1).all(), "no pair threshold: three needed"


def test_a_face_below_the_recognisability_gate_is_never_named() -> None:
    face = unit(1, 0.01, 0)  # as close to person 1 as a face gets
    assert namer().name_image(face[None], [1.0], recognisability=[0.9]) == [(1, namer().gallery.match(face[None])[0].score)]
    assert namer().name_image(face[None], [1.0], recognisability=[0.2]) == [(None, None)]
    assert namer().name_image(face[None], [1.0], recognisability=[None])[0][0] == 1, "not scored: never gated"


def test_eval_reports_on_a_folder_per_person(tmp_path: Path, samples: Path, astronaut_rgb: np.ndarray) -> None:
    import json

    for person, files in {"obama": ["obama.jpg", "obama2.jpg", "obama3.jpg"], "biden": ["biden.jpg"]}.items():
        (tmp_path / "people" / person).mkdir(parents=True)
        for f in files:
            shutil.copy(samples / f, tmp_path / "people" / person / f)
    (tmp_path / "people" / "astronaut").mkdir()
    Image.fromarray(astronaut_rgb).save(tmp_path / "people" / "astronaut" / "a.jpg")
    Image.fromarray(astronaut_rgb[:, ::-1]).save(tmp_path / "people" / "astronaut" / "b.jpg")
    code, output = cli(tmp_path / "unused.duckdb", "eval", str(tmp_path / "people"), "--json")
    assert code == 0, output
    report = json.loads(output)
    assert (report["people"], report["photos"], report["no_face"], report["unclear"]) == (3, 6, 0, 0)
    assert report["strangers_named"] == 0.0 and report["named_wrong"] == 0.0 and report["named_right"] > 0.5
    assert report["cluster_precision"] == 1.0 and report["tar_at_far_1"] > 0.5
    assert not (tmp_path / "unused.duckdb").exists(), "eval stores nothing"


def test_neighbours_from_the_graph_decide_as_the_exact_lists() -> None:
    """Past ``exact_up_to`` free faces the lists come from an HNSW graph: people seen many times,
    strangers, and repeat visitors seen twice, in images of four faces, group face for face as
    with the exact lists (``exact_up_to=0`` forces the graph here)."""
    from facelake.identities.clustering import CentroidClustering

    rng = np.random.default_rng(5)
    people = _people(rng, 40, 12, 128, 0.03)
    strangers = rng.normal(size=(3000, 128)).astype(np.float32)
    twice = np.repeat(rng.normal(size=(30, 128)), 2, axis=0) + rng.normal(scale=0.01, size=(60, 128))
    X = np.vstack([people, strangers, twice]).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    order = rng.permutation(len(X))
    X = X[order]
    images = [f"img{i // 4}" for i in rng.permutation(len(X))]
    quality = np.round(rng.random(len(X)), 1).astype(np.float32)  # ties: the row order decides
    clear = rng.random(len(X)) > 0.2
    exact = CentroidClustering(0.8, pair_threshold=0.97).fit(X, groups=images, quality=quality, clear=clear)
    graph = CentroidClustering(0.8, pair_threshold=0.97, exact_up_to=0).fit(X, groups=images, quality=quality,
                                                                          clear=clear)
    assert (exact.labels_ >= 0).sum() > 400 and exact.sizes_.max() >= 10
    assert graph.labels_.tolist() == exact.labels_.tolist()


def test_faces_matched_in_blocks_match_as_each_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """identify matches a batch's faces at once, MATCH_ROWS at a time: every face's best person,
    score and margin must be what matching it alone gives (to float32's last bits), ties between
    two people included."""
    from facelake.identities import matching

    rng = np.random.default_rng(3)
    enrolled = rng.normal(size=(40, 16)).astype(np.float32)
    enrolled /= np.linalg.norm(enrolled, axis=1, keepdims=True)
    people = np.repeat(np.arange(1, 21), 2)
    enrolled[39] = enrolled[0]  # person 20's second face is person 1's first: a tie for faces near it
    gallery = Gallery(threshold=0.5, margin=0.02).fit(enrolled, people)
    faces = enrolled[rng.integers(0, 40, 60)] + rng.normal(scale=0.15, size=(60, 16)).astype(np.float32)
    faces = np.vstack([faces, enrolled[:1]])
    faces /= np.linalg.norm(faces, axis=1, keepdims=True)
    monkeypatch.setattr(matching, "MATCH_ROWS", 7)
    together = gallery.match(faces)
    alone = [gallery.match(faces[i:i + 1])[0] for i in range(len(faces))]
    # A product of 7 rows and one of 1 may round the last bit apart (BLAS picks other kernels).
    assert [(m.person, m.candidate) for m in together] == [(m.person, m.candidate) for m in alone]
    assert np.allclose([(m.score, m.margin) for m in together], [(m.score, m.margin) for m in alone], atol=1e-6)
    assert together[-1].margin == 0.0 and together[-1].person is None, "a tie names nobody"
    assert sum(m.person is not None for m in together) > 20, "most faces near an enrolled one are named"

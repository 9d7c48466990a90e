"""The second embedder: MobileFaceNet converted from TFLite by facelake's own converter,
checked against the TFLite runtime, aligned by a similarity transform, stored with its model
name; and the fused embedder (the default) that combines it with dlib's ResNet."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest

from facelake.store.base import Target
from facelake.vision import models
from facelake.vision.align import ARCFACE_TEMPLATE, SimilarityAligner, similarity_transform
from facelake.vision.analyzer import AnalyzerOptions, FaceAnalyzer, default_options

from .conftest import load_rgb
from .dbs import execute, rows
from .test_ingest import cli


def options(**changes: object) -> AnalyzerOptions:
    """The default options with ``changes``."""
    return replace(default_options(), **changes)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def mobilefacenet() -> FaceAnalyzer:
    return FaceAnalyzer(options(embedder="mobilefacenet"))


def test_similarity_transform_recovers_a_known_warp() -> None:
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -5.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = ARCFACE_TEMPLATE
    dst = src @ rot.T + shift
    m = similarity_transform(src, dst)
    assert np.allclose(m[:, :2], rot, atol=1e-9) and np.allclose(m[:, 2], shift, atol=1e-9)


def test_converted_onnx_matches_the_tflite_runtime(samples: Path, mobilefacenet: FaceAnalyzer) -> None:
    from ai_edge_litert.interpreter import Interpreter

    tflite = models.mobilefacenet_tflite()
    session = models.mobilefacenet_session()
    image = load_rgb(samples / "obama.jpg")
    chip = SimilarityAligner().align(image, mobilefacenet.detect(image)[0]).chip
    rng = np.random.default_rng(0)
    noise = rng.uniform(0, 255, (1, 112, 112, 3))
    batch = (np.concatenate([chip[None].astype(np.float64), noise]).astype(np.float32) - 127.5) / 128.0
    ours = session.run(None, {"input": batch})[0]
    interpreter = Interpreter(model_content=tflite)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], batch)  # the shipped file takes 2
    interpreter.invoke()
    reference = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    cosine = (ours * reference).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(reference, axis=1)
    assert ours.shape == (2, 192) and cosine.min() >= 0.9999
    single = session.run(None, {"input": batch[:1]})[0]  # the batch dimension is free after conversion
    assert np.allclose(single, ours[:1], atol=1e-4)
    ops = {node.op_type for node in onnx.load(session._model_path).graph.node}
    assert "Abs" not in ops and "Mul" not in ops, "every spelled-out PReLU was folded into 1x1 convolutions"


def test_mobilefacenet_tells_people_apart(samples: Path, mobilefacenet: FaceAnalyzer) -> None:
    emb = {name: mobilefacenet.analyze(load_rgb(samples / f"{name}.jpg"))[0] for name in
           ("obama", "obama2", "obama3", "biden")}
    assert all(f.model == models.MOBILEFACENET and f.embedding.shape == (192,) for f in emb.values())
    same = [float(emb[a].embedding @ emb[b].embedding) for a, b in (("obama", "obama2"), ("obama", "obama3"))]
    other = [float(emb[a].embedding @ emb["biden"].embedding) for a in ("obama", "obama2", "obama3")]
    assert min(same) > 0.6 and max(other) < 0.3


def test_the_fused_embedding_is_both_networks_weighted(samples: Path, analyzer: FaceAnalyzer) -> None:
    from facelake.identities.matching import CALIBRATED

    dlib = FaceAnalyzer(options(embedder="dlib"))
    mfn = FaceAnalyzer(options(embedder="mobilefacenet", embed_lowres_px=0))
    w = models.FUSION_DLIB_WEIGHT
    fused = {}
    for name in ("obama", "obama2", "biden"):
        image = load_rgb(samples / f"{name}.jpg")
        face = analyzer.analyze(image)[0]
        assert face.model == models.FUSION and face.embedding.shape == (320,)
        assert float(np.linalg.norm(face.embedding)) == pytest.approx(1.0, abs=1e-5)
        a, b = dlib.analyze(image)[0].embedding, mfn.analyze(image)[0].embedding
        assert np.allclose(face.embedding, np.concatenate([np.sqrt(w) * a, np.sqrt(1 - w) * b]), atol=1e-5)
        fused[name] = (face.embedding, a, b)
    # The fused cosine is the weighted mean of the two networks' cosines ...
    (x, xa, xb), (y, ya, yb) = fused["obama"], fused["biden"]
    assert float(x @ y) == pytest.approx(w * float(xa @ ya) + (1 - w) * float(xb @ yb), abs=1e-5)
    # ... and names the same person while keeping another apart, at its own calibrated threshold.
    t = CALIBRATED[models.FUSION]
    assert float(fused["obama"][0] @ fused["obama2"][0]) > t.identify > float(x @ y) + 0.05


def test_the_fused_embedder_needs_both_chips() -> None:
    from facelake.vision.embed import FusedEmbedder
    from facelake.vision.types import AlignedFace

    fused = FusedEmbedder(FaceAnalyzer(options(embedder="dlib")).embedder,
                          FaceAnalyzer(options(embedder="mobilefacenet")).embedder, models.FUSION, 0.85)
    chip = np.zeros((150, 150, 3), np.uint8)
    with pytest.raises(ValueError, match="both chips"):
        fused.embed_faces([AlignedFace(chip, np.zeros((5, 2), np.float32), "box")])
    with pytest.raises(ValueError):
        FusedEmbedder(fused.first, fused.second, models.FUSION, 1.0)
    assert fused.embed_faces([]).shape == (0, 320)


def test_each_row_names_its_model_and_models_never_meet(db: Target, tmp_path: Path, cams: Path, samples: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli(db, "people", "add", "Barack Obama", str(samples / "obama3.jpg"), "--consent", "test")[0] == 0
    assert cli(db, "ingest", str(cams / "frontdoor"), "--camera", "frontdoor", "--workers", "1")[0] == 0
    monkeypatch.setenv("FACELAKE_EMBEDDER", "mobilefacenet")
    # The only enrollment is a fused embedding: a MobileFaceNet face cannot be named by it,
    # and ingest says so instead of silently naming nobody.
    code, output = cli(db, "ingest", str(cams / "garden"), "--camera", "garden", "--workers", "1")
    assert code == 0 and "1 enrolled person has no mobilefacenet_sirius_v1 embedding" in output, output
    assert "facelake reembed --model mobilefacenet" in output
    assert [(c, m, len(e), p) for c, m, e, p in rows(
        db, "SELECT i.camera, s.model, s.embedding, s.person_id FROM sightings s JOIN images i "
            "USING (image_id) WHERE i.camera <> 'enrollment' ORDER BY 1, 2, 4")] == [
        ("frontdoor", models.FUSION, 320, 1), ("frontdoor", models.FUSION, 320, None),
        ("garden", models.MOBILEFACENET, 192, None)]
    code, output = cli(db, "stats")
    assert code == 0 and models.MOBILEFACENET in output and models.FUSION in output


def test_reembed_switches_models_keeping_names_and_is_resumable(
    db: Target, tmp_path: Path, cams: Path, samples: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    enroll = tmp_path / "enroll"
    enroll.mkdir()
    (enroll / "o3.jpg").write_bytes((samples / "obama3.jpg").read_bytes())
    assert cli(db, "people", "add", "Barack Obama", str(enroll / "o3.jpg"), "--consent", "test")[0] == 0
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0
    before = rows(db, "SELECT sighting_id, person_id, cluster_id FROM sightings ORDER BY 1")
    assert sum(r[1] is not None for r in before) == 3  # enrollment + two obama photos
    (cams / "garden" / "c.jpg").unlink()  # one source gone: its kept face context stands in
    # and one face with neither source nor context keeps its embedding
    execute(db, "DELETE FROM face_contexts WHERE sighting_id = (SELECT s.sighting_id FROM sightings s "
                "JOIN images i USING (image_id) WHERE i.uri LIKE '%c.jpg')")
    (enroll / "o3.jpg").unlink()
    code, output = cli(db, "reembed", "--model", "mobilefacenet")
    assert code == 0 and "re-embedded 3 faces" in output and "(1 from the kept face context" in output, output
    assert "1 faces kept their old embedding" in output
    assert rows(db, "SELECT sighting_id, person_id, cluster_id FROM sightings ORDER BY 1") == before
    from collections import Counter

    assert Counter((m, len(e)) for m, e in rows(db, "SELECT model, embedding FROM sightings")) == {
        (models.FUSION, 320): 1, (models.MOBILEFACENET, 192): 3}
    # Each face's recognisability is its model's: recomputed with the new embedding.
    from facelake.vision.recognisability import calibrations

    for model, embedding, score in rows(db, "SELECT model, embedding, recognisability FROM sightings"):
        expected = float(calibrations()[model].score(np.array([embedding], dtype=np.float32))[0])
        assert score == pytest.approx(expected, abs=1e-5)
    # Nothing left that can be done: a second run re-embeds nothing.
    assert "re-embedded 0 faces" in cli(db, "reembed", "--model", "mobilefacenet")[1]
    # With the new model configured, a new photo of the enrolled person is named through the new gallery.
    monkeypatch.setenv("FACELAKE_EMBEDDER", "mobilefacenet")
    from PIL import Image

    Image.open(samples / "obama2.jpg").save(cams / "garden" / "new.jpg", quality=80)  # new bytes, same face
    code, output = cli(db, "ingest", str(cams), "--workers", "1")
    assert code == 0 and "cannot be named" not in output, output  # the gallery has the new model now
    assert rows(db, "SELECT s.model, p.name FROM sightings s JOIN images i USING (image_id) "
                    "LEFT JOIN people p USING (person_id) WHERE i.uri LIKE '%new.jpg'") == [
        (models.MOBILEFACENET, "Barack Obama")]
    # The kept contexts follow the embeddings' erasure.
    assert rows(db, "SELECT count(*) FROM face_contexts")[0][0] >= 4
    assert cli(db, "forget", "Barack Obama")[0] == 0
    assert rows(db, "SELECT count(*) FROM face_contexts c JOIN sightings s USING (sighting_id) "
                    "WHERE s.embedding IS NULL") == [(0,)]
    assert rows(db, "SELECT count(*) FROM face_contexts c LEFT JOIN sightings s USING (sighting_id) "
                    "WHERE s.sighting_id IS NULL") == [(0,)]

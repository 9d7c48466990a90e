"""Remakes the vendored recognisability constants (``src/facelake/vision/weights/recognisability.npz``) and measures them.

The score (Deng et al. 2021, "Harnessing Unrecognizable Faces for Improving Face Recognition"):
faces nobody can identify — masked, helmeted, in strong profile, heavily blurred, tiny — embed
near one point, the *unrecognisable identity*; a face's distance from it says how far its
embedding can be trusted. Here, per embedder, the centre is the mean embedding of the hard
detections of ``wider_dev`` (WIDER FACE faces labelled heavily occluded, heavily blurred or
atypical pose, and detections under 16 px), taken from the half of the photos whose name hashes
even; the odd half is held out to measure.

Steps:

1. ``extract``: detect, align and embed every photo once (each embedder), match detections to
   the labelled boxes (IoU ≥ 0.4), cache the rows under ``--cache``.
2. ``fit``: centre, then a logistic fit of "clear" vs "hard" on the distance from the centre
   on the even half, shifted so that the 5th percentile of the even half's clear faces scores
   0.5: the stored ``recognisability`` is that score, and 0.5 the gate (it keeps ~95 % of clear
   faces). Prints held-out AUCs (hard vs clear among faces of quality ≥ 0.25: the distance alone,
   quality alone, and a logistic fit of both — which measured worse than the distance alone, so
   quality stays a gate of its own), what the gate keeps of clear, hard and unlabelled
   detections (mostly no face), and writes the ``.npz`` with ``--write``.

3. ``clusters``: on the same cached faces, without a store: the largest cluster, the faces in
   clusters of 2+ and the heavily occluded or blurred ones among them, and BCubed F (every face its
   own person), for the previous rule, the gate alone, the density rule alone and both; and where
   ``Thresholds.cluster_pair`` comes from (the even half's closest two faces of different photos, rounded up
   to the hundredth, plus 0.01), with the rule that lets such a pair of clear faces start a group.
4. ``naming``: 20 clear faces of different photos enrolled, the names the others get (all wrong),
   by WIDER's labels, with and without the gate (the store-backed version is ``bench/identify.py --wider``).
5. ``sharp``: where the fused embedder's ``sharp_extra`` comes from. Different people's scores (every two
   recognisable faces of different even-half photos) at FAR 0.1 % and 0.01 % per pair, by quality; the same
   person's scores by quality, from a database ``bench/identify.py`` left (``--identify-db``, its "files in"
   folder); then, per half of the people and of wider_dev (20 faces enrolled in each half, the rest of that
   half as strangers), the names given before and after.
6. ``masks``: a surgical mask alone on a sharp frontal face scores like a clear face. Does it cost names? Every
   clean photo of the identify bench (``--identify-db``'s folder) gets a pale blue mask drawn from the nose
   bridge to below the chin (from the detector's landmarks and box), and is named against that bench's
   enrollments: right and wrong names of enrolled people, names given to strangers, and the masked faces'
   recognisability.

7. ``gallery``: where ``Thresholds.gallery_extra`` comes from. A stranger meets every enrolled person, so with
   N people the chance one of them scores over the bar is about N times one person's. The even half's
   different-person scores (every two recognisable faces of different photos) give the threshold at FAR
   10^-3 down to 10^-4 per pair; the fitted rise per tenfold smaller FAR is ``gallery_extra`` (the odd half's
   own rise printed beside it). Then, offline, N clear faces of different photos enrolled (N from 20 to 200;
   the rest of that half's faces strangers, named image by image as the store does), the names given with
   the gallery term and without, on each half and the whole set; with ``--identify-db``, also the identify
   bench's right and wrong names when its 16 enrollments sit in a gallery of N people (the other N - 16 being
   clear wider_dev faces), before and after.

Usage: python bench/recognisability.py extract [--facedata ../shared/facedata] [--cache /tmp/ers]
       python bench/recognisability.py fit [--cache /tmp/ers] [--write]
       python bench/recognisability.py clusters [--cache /tmp/ers]
       python bench/recognisability.py naming [--cache /tmp/ers]
       python bench/recognisability.py sharp [--cache /tmp/ers] --identify-db /tmp/facelake-identify-…/facelake.duckdb
       python bench/recognisability.py masks --identify-db /tmp/facelake-identify-…/facelake.duckdb
       python bench/recognisability.py gallery [--cache /tmp/ers] [--identify-db …/facelake.duckdb]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "facelake" / "vision" / "weights" / "recognisability.npz"
TINY_PX = 16.0


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = w * h
    return inter / max(aw * ah + bw * bh - inter, 1e-9)


def even_half(name: str) -> bool:
    """The photos the centre is made from (a stable split by name, not by order)."""
    return hashlib.sha256(name.encode()).digest()[0] % 2 == 0


def match_truth(boxes: list[tuple[float, float, float, float]], truth: list[dict]) -> list[int]:
    """Index of the labelled face each detection is (greedy by IoU ≥ 0.4), or -1."""
    pairs = sorted(((iou(b, tuple(t["box"])), i, j) for i, b in enumerate(boxes) for j, t in enumerate(truth)),
                   reverse=True)
    out, used = [-1] * len(boxes), set()
    for v, i, j in pairs:
        if v < 0.4:
            break
        if out[i] < 0 and j not in used:
            out[i] = j
            used.add(j)
    return out


def extract(facedata: Path, cache: Path) -> None:
    """Every detection of wider_dev with its embeddings (fusion, dlib, MobileFaceNet) and WIDER's labels."""
    from facelake.config import Settings
    from facelake.vision import models
    from facelake.vision.analyzer import FaceAnalyzer, face_quality
    from facelake.vision.options import AnalyzerOptions

    options = AnalyzerOptions.from_settings(Settings.model_construct())
    analyzer = FaceAnalyzer(options)
    fusion = analyzer.embedder
    mfn = models.build_embedder(AnalyzerOptions(**{**options.__dict__, "embedder": "mobilefacenet"}))
    truth = json.loads((facedata / "wider_dev" / "truth.json").read_text())
    rows: dict[str, list] = {k: [] for k in ("image", "even", "width", "score", "quality", "blur", "occlusion",
                                             "pose", "invalid", "matched", "fusion", "dlib", "mobilefacenet")}
    for n, name in enumerate(sorted(truth)):
        rgb = np.asarray(Image.open(facedata / "wider_dev" / "images" / name).convert("RGB"))
        dets = analyzer.detect(rgb)
        if not dets:
            continue
        aligned = analyzer.align(rgb, dets)
        fused = fusion.embed_faces(aligned)
        alone = mfn.embed([a.second for a in aligned])  # type: ignore[attr-defined]
        w = models.FUSION_DLIB_WEIGHT
        dlib_part = fused[:, :128] / np.sqrt(w)
        labels = truth[name]
        for det, al, f, d, m, j in zip(dets, aligned, fused, dlib_part, alone, match_truth([d.box for d in dets], labels)):
            t = labels[j] if j >= 0 else {"blur": -1, "occlusion": -1, "pose": -1, "invalid": -1}
            rows["image"].append(name)
            rows["even"].append(even_half(name))
            rows["width"].append(det.width)
            rows["score"].append(det.score)
            rows["quality"].append(face_quality(det, al.chip))
            for k in ("blur", "occlusion", "pose", "invalid"):
                rows[k].append(t[k])
            rows["matched"].append(j >= 0)
            rows["fusion"].append(f)
            rows["dlib"].append(d / np.linalg.norm(d))
            rows["mobilefacenet"].append(m)
        if n % 20 == 0:
            print(f"{n}/{len(truth)} photos, {len(rows['image'])} detections", flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache / "wider_dev.npz", **{k: np.asarray(v) for k, v in rows.items()})
    print(f"{len(rows['image'])} detections → {cache / 'wider_dev.npz'}")


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(a positive scores above a negative), ties counted half (Mann-Whitney)."""
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([pos, neg]))
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def labels_of(z: dict) -> tuple[np.ndarray, np.ndarray]:
    """(hard, clear) masks of the labelled, valid faces."""
    valid = z["matched"] & (z["invalid"] == 0)
    hard = valid & ((z["occlusion"] == 2) | (z["blur"] == 2) | (z["pose"] == 1))
    clear = valid & (z["occlusion"] == 0) & (z["blur"] == 0) & (z["pose"] == 0)
    return hard, clear


def logistic(features: np.ndarray, target: np.ndarray, l2: float = 1e-3) -> np.ndarray:
    """Weights ``[intercept, *coefficients]`` of a logistic regression (log loss, a little L2), by BFGS."""
    from scipy.optimize import minimize

    A = np.hstack([np.ones((len(features), 1)), features])
    y = target.astype(np.float64)

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = A @ w
        p = 1.0 / (1.0 + np.exp(-z))
        value = float(np.mean(np.logaddexp(0.0, z) - y * z) + l2 * np.sum(w[1:] ** 2))
        grad = A.T @ (p - y) / len(y) + 2 * l2 * np.concatenate([[0.0], w[1:]])
        return value, grad

    return minimize(loss, np.zeros(A.shape[1]), jac=True, method="BFGS").x


def fit(cache: Path, write: bool, keep: float) -> None:
    z = dict(np.load(cache / "wider_dev.npz"))
    hard, clear = labels_of(z)
    tiny = z["width"] < TINY_PX
    even = z["even"]
    out: dict[str, np.ndarray] = {}
    print(f"{'model':34} {'AUC dist':>8} {'quality':>8} {'dist+q':>8} {'clear kept':>10} {'hard kept':>9} {'no face kept':>12}")
    from facelake.vision.models import EMBEDDERS

    for key, entry in EMBEDDERS.items():
        X = z[key].astype(np.float64)
        centre = X[even & (hard | tiny)].mean(axis=0)
        centre /= np.linalg.norm(centre)
        dist = 1.0 - X @ centre
        train = even & (hard | clear)
        w = logistic(dist[train, None], clear[train])
        z_all = w[0] + w[1] * dist
        shift = float(np.quantile(z_all[even & clear], 1.0 - keep))
        prob = 1.0 / (1.0 + np.exp(-(z_all - shift)))
        gate = 0.5
        both = logistic(np.stack([dist, z["quality"]], axis=1)[train], clear[train])
        combined = both[0] + both[1] * dist + both[2] * z["quality"]
        test = ~even & (z["quality"] >= 0.25)
        scores = [auc(s[test & clear], s[test & hard]) for s in (dist, z["quality"], combined)]
        kept_clear = float((prob[~even & clear] >= gate).mean())
        kept_hard = float((prob[~even & hard] >= gate).mean())
        kept_other = float((prob[~even & ~z["matched"]] >= gate).mean())
        print(f"{entry.model_name:34} {scores[0]:8.3f} {scores[1]:8.3f} {scores[2]:8.3f} {kept_clear:10.3f} "
              f"{kept_hard:9.3f} {kept_other:12.3f}")
        out[f"{entry.model_name}.centre"] = centre.astype(np.float32)
        out[f"{entry.model_name}.logit"] = np.array([w[0] - shift, w[1]], dtype=np.float64)
    if write:
        np.savez_compressed(OUT, **out)
        print(f"wrote {OUT}")


def clusters(cache: Path, min_quality: float = 0.13) -> None:
    """Offline check on the cached embeddings (no store): the largest cluster and the hard faces in clusters,
    before (every face, a face founds a group alone) and after (the gate, then the density rule)."""
    from facelake.identities.clustering import CentroidClustering, bcubed
    from facelake.identities.matching import CALIBRATED
    from facelake.vision.models import EMBEDDERS
    from facelake.vision.recognisability import GATE, calibrations

    z = dict(np.load(cache / "wider_dev.npz"))
    heavy = z["matched"] & ((z["occlusion"] == 2) | (z["blur"] == 2))
    print(f"{'model':34} {'rule':16} {'faces':>6} {'in 2+':>6} {'largest':>7} {'heavy in 2+':>11} {'BCubed F':>8}")
    for key, entry in EMBEDDERS.items():
        X = z[key].astype(np.float32)
        scores = calibrations()[entry.model_name].score(X)
        base = z["quality"] >= min_quality
        t = CALIBRATED[entry.model_name].cluster
        gated = np.nonzero(base & (scores >= GATE) & z["even"])[0]
        S = X[gated] @ X[gated].T
        S[z["image"][gated][:, None] == z["image"][gated][None, :]] = -1
        pair = np.ceil(S.max() * 100) / 100 + 0.01
        print(f"{entry.model_name:34} pair threshold: even half's closest two faces of different photos "
              f"{S.max():.4f} -> {pair:.2f} (CALIBRATED: {CALIBRATED[entry.model_name].cluster_pair})")
        clear = scores >= 0.53  # Settings.enroll_min_recognisability
        for rule, keep, min_samples, linkage, pair_at in (
                ("before", base, 1, "centroid", None), ("gate", base & (scores >= GATE), 1, "centroid", None),
                ("density", base, 3, "centroid", None), ("gate+density", base & (scores >= GATE), 3, "centroid", None),
                ("gate+average", base & (scores >= GATE), 1, "average", None),
                ("gate+dens+avg", base & (scores >= GATE), 3, "average", None),
                ("+pair", base & (scores >= GATE), 3, "average", CALIBRATED[entry.model_name].cluster_pair)):
            idx = np.nonzero(keep)[0]
            labels = np.full(len(X), -1, dtype=np.int64)
            labels[idx] = CentroidClustering(t, min_samples, linkage, pair_at).fit(
                X[idx], groups=list(z["image"][idx]), quality=z["quality"][idx], clear=clear[idx]).labels_
            sel = np.nonzero(base)[0]
            values, counts = np.unique(labels[labels >= 0], return_counts=True)
            size = dict(zip(values.tolist(), counts.tolist()))
            in2 = np.array([size.get(int(v), 0) >= 2 for v in labels])
            _, _, f = bcubed([str(i) for i in sel], [int(v) for v in labels[sel]])
            print(f"{entry.model_name:34} {rule:16} {len(sel):6d} {int(in2[sel].sum()):6d} "
                  f"{max(size.values(), default=0):7d} {int((in2 & heavy & base).sum()):11d} {f:8.3f}")


def naming(cache: Path, enroll: int = 20, min_quality: float = 0.13) -> None:
    """Offline check: ``enroll`` clear faces of different photos enrolled, every other face named by the
    fused embedder's rule, with and without the gate; every name is wrong (each face its own person)."""
    from facelake.identities.matching import CALIBRATED, Gallery, Namer
    from facelake.vision.models import FUSION
    from facelake.vision.recognisability import GATE, calibrations

    z = dict(np.load(cache / "wider_dev.npz"))
    X, q = z["fusion"].astype(np.float32), z["quality"]
    scores = calibrations()[FUSION].score(X)
    chosen: list[int] = []
    for i in np.argsort(-q):
        if scores[i] >= GATE and z["image"][i] not in {z["image"][j] for j in chosen} and len(chosen) < enroll:
            chosen.append(int(i))
    t = CALIBRATED[FUSION]
    gallery = Gallery(t.identify, t.margin).fit(X[chosen], np.arange(len(chosen)))
    kinds = {"all": z["matched"] | ~z["matched"], "heavy occlusion": z["occlusion"] == 2, "heavy blur": z["blur"] == 2,
             "atypical pose": z["pose"] == 1, "clear": (z["occlusion"] == 0) & (z["blur"] == 0) & (z["pose"] == 0),
             "no labelled face": ~z["matched"]}
    print(f"{len(chosen)} faces enrolled; names given to the other faces (all wrong)")
    print(f"  {'faces':18} {'faces':>6} {'named without gate':>18} {'with gate':>9}")
    named = {}
    for gated in (False, True):
        namer = Namer(gallery, t, min_quality, min_recognisability=GATE if gated else 0.0)
        out = np.zeros(len(X), dtype=bool)
        for image in np.unique(z["image"]):
            rows = [i for i in np.nonzero(z["image"] == image)[0] if i not in chosen]
            if rows:
                decisions = namer.name_image(X[rows], list(q[rows]), recognisability=[float(scores[i]) for i in rows])
                out[rows] = [p is not None for p, _ in decisions]
        named[gated] = out
    others = np.ones(len(X), dtype=bool)
    others[chosen] = False
    for k, mask in kinds.items():
        m = mask & others
        print(f"  {k:18} {int(m.sum()):6d} {int(named[False][m].sum()):18d} {int(named[True][m].sum()):9d}")


def identify_faces(db: Path) -> dict[str, np.ndarray]:
    """The identify bench's enrolled faces and its probes (the largest face of each clean and CCTV photo)."""
    import duckdb

    def person(key: str) -> str:  # bench/accuracy.py's keys: orl01_3 is subject s1, obama_b is obama
        return f"orls{int(key[3:5])}" if key.startswith("orl") else key.split("_")[0]

    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("""SELECT i.camera, regexp_extract(i.uri, '([^/]+)\\.[a-z]+$', 1), s.embedding, s.quality,
                                     s.recognisability, p.name
                              FROM sightings s JOIN images i USING (image_id) LEFT JOIN enrollments e USING (sighting_id)
                              LEFT JOIN people p ON p.person_id = e.person_id
                              WHERE s.face_index = 0 AND i.camera IN ('enrollment', 'clean', 'cctv')""").fetchall()
    enrolled = [r for r in rows if r[0] == "enrollment"]
    probes = [r for r in rows if r[0] != "enrollment"]
    return {"G": np.array([r[2] for r in enrolled], np.float64), "gname": np.array([r[5] for r in enrolled]),
            "P": np.array([r[2] for r in probes], np.float64), "q": np.array([r[3] for r in probes]),
            "r": np.array([r[4] for r in probes]), "person": np.array([person(r[1]) for r in probes]),
            "camera": np.array([r[0] for r in probes])}


def sharp(cache: Path, identify_db: Path, min_quality: float = 0.13) -> None:
    """Different people's scores do not depend on quality, the same person's do: the threshold for sharp faces."""
    from dataclasses import replace

    from facelake.identities.matching import CALIBRATED, Gallery, Namer
    from facelake.vision.models import FUSION
    from facelake.vision.recognisability import GATE, calibrations

    z = dict(np.load(cache / "wider_dev.npz"))
    X, q, image, even = z["fusion"].astype(np.float64), z["quality"], z["image"], z["even"]
    ok = (q >= min_quality) & (calibrations()[FUSION].score(X.astype(np.float32)) >= GATE)
    t = CALIBRATED[FUSION]
    bands = [(0.13, 0.25), (0.25, 0.4), (0.4, 0.6), (0.6, 0.8), (0.8, 1.01)]
    idx = np.nonzero(ok & even)[0]
    iu = np.triu_indices(len(idx), 1)
    other = image[idx][iu[0]] != image[idx][iu[1]]
    impostor = (X[idx] @ X[idx].T)[iu][other]
    low_q = np.minimum(q[idx][iu[0]], q[idx][iu[1]])[other]
    far3, far4 = (float(np.quantile(impostor, 1 - f)) for f in (1e-3, 1e-4))
    print(f"different people, even half ({len(impostor)} pairs): FAR 0.1 % at {far3:.4f}, 0.01 % at {far4:.4f} "
          f"-> sharp_extra {far4 - t.identify:.3f} over identify {t.identify}")
    ident = identify_faces(identify_db)
    S = ident["P"] @ ident["G"].T
    genuine = S[ident["person"][:, None] == ident["gname"][None, :]]
    genuine_q = np.repeat(ident["q"][:, None], len(ident["G"]), 1)[ident["person"][:, None] == ident["gname"][None, :]]
    print(f"  {'quality':10} {'different: mean':>15} {'FAR 0.1 %':>9} {'same: n':>7} {'min':>7} {'10th pct':>8}")
    for lo, hi in bands:
        d, g = (low_q >= lo) & (low_q < hi), (genuine_q >= lo) & (genuine_q < hi)
        print(f"  {lo:.2f}-{min(hi, 1):.2f}  {impostor[d].mean():15.4f} {np.quantile(impostor[d], 0.999):9.4f} "
              f"{int(g.sum()):7d} {genuine[g].min() if g.any() else float('nan'):7.4f} "
              f"{np.quantile(genuine[g], 0.1) if g.any() else float('nan'):8.4f}")
    before, after = replace(t, sharp_extra=0.0), t
    print(f"\nnames before (sharp_extra 0) and after (sharp_extra {t.sharp_extra})")
    best = S.argmax(1)
    right = ident["gname"][best] == ident["person"]
    gallery = Gallery(t.identify, t.margin).fit(ident["G"].astype(np.float32), np.arange(len(ident["G"])))
    for label, th in (("before", before), ("after", after)):
        namer = Namer(gallery, th, min_quality)
        named = np.array([namer.name_image(ident["P"][i:i + 1].astype(np.float32), [float(ident["q"][i])],
                                           recognisability=[float(ident["r"][i])])[0][0] is not None
                          for i in range(len(ident["P"]))])
        for half in (True, False):
            people = np.array([even_half(p) == half for p in ident["person"]])
            cells = []
            for camera in ("clean", "cctv"):
                m = people & (ident["camera"] == camera)
                cells.append(f"{camera} right {int((named & right & m).sum())} wrong {int((named & ~right & m).sum())}")
            print(f"  identify, {'even' if half else 'odd'} people, {label}: " + ", ".join(cells))
    for label, half in (("even", even), ("odd", ~even), ("all", np.ones(len(X), bool))):
        chosen: list[int] = []
        for i in np.argsort(-q):
            if half[i] and ok[i] and image[i] not in {image[j] for j in chosen} and len(chosen) < 20:
                chosen.append(int(i))
        probes = [int(i) for i in np.nonzero(half)[0] if image[i] not in {image[j] for j in chosen}]
        gallery = Gallery(t.identify, t.margin).fit(X[chosen].astype(np.float32), np.arange(len(chosen)))
        counts = []
        for th in (before, after):
            namer = Namer(gallery, th, min_quality)
            counts.append(sum(namer.name_image(X[i:i + 1].astype(np.float32), [float(q[i])],
                                               recognisability=[float(v) for v in
                                                                calibrations()[FUSION].score(X[i:i + 1].astype(np.float32))])[0][0]
                              is not None for i in probes))
        print(f"  wider_dev {label} half, 20 enrolled, {len(probes)} other faces of other photos: "
              f"named {counts[0]} before, {counts[1]} after (all wrong)")


def masks(identify_db: Path, min_quality: float = 0.13) -> None:
    """The identify bench's clean photos with a surgical mask drawn on, named against its enrollments."""
    from PIL import ImageDraw

    from facelake.config import Settings
    from facelake.identities.matching import CALIBRATED, Gallery, Namer
    from facelake.vision.analyzer import FaceAnalyzer, face_quality
    from facelake.vision.models import FUSION
    from facelake.vision.options import AnalyzerOptions
    from facelake.vision.recognisability import calibrations

    analyzer = FaceAnalyzer(AnalyzerOptions.from_settings(Settings.model_construct()))
    ident = identify_faces(identify_db)
    t = CALIBRATED[FUSION]
    namer = Namer(Gallery(t.identify, t.margin).fit(ident["G"].astype(np.float32), np.arange(len(ident["G"]))),
                  t, min_quality)
    enrolled = set(ident["gname"].tolist())
    counts = {"right": 0, "wrong": 0, "unknown": 0, "stranger named": 0, "stranger unknown": 0, "not found": 0}
    scores = []
    for path in sorted((identify_db.parent / "clean").iterdir()):
        image = Image.open(path).convert("RGB")
        faces = analyzer.detect(np.asarray(image))
        if not faces:
            continue
        face = max(faces, key=lambda d: d.width)
        x, y, w, h = face.box
        eyes_y = float(face.landmarks[:2, 1].mean())
        top = float(face.landmarks[2, 1]) - 0.35 * (float(face.landmarks[2, 1]) - eyes_y)  # the nose bridge
        ImageDraw.Draw(image).polygon([(x + 0.02 * w, top), (x + 0.98 * w, top), (x + 0.95 * w, y + 1.02 * h),
                                       (x + w / 2, y + 1.08 * h), (x + 0.05 * w, y + 1.02 * h)], fill=(170, 200, 225))
        rgb = np.asarray(image)
        found = analyzer.detect(rgb)
        if not found:
            counts["not found"] += 1
            continue
        masked = max(found, key=lambda d: d.width)
        aligned = analyzer.align(rgb, [masked])
        embedding = analyzer.embedder.embed_faces(aligned)
        r = float(calibrations()[FUSION].score(embedding)[0])
        scores.append(r)
        person, _ = namer.name_image(embedding, [face_quality(masked, aligned[0].chip)], recognisability=[r])[0]
        who = f"orls{int(path.stem[3:5])}" if path.stem.startswith("orl") else path.stem.split("_")[0]
        name = None if person is None else str(ident["gname"][person])
        if who in enrolled:
            counts["right" if name == who else "wrong" if name else "unknown"] += 1
        else:
            counts["stranger named" if name else "stranger unknown"] += 1
    print(f"masked photos: {counts}")
    print(f"recognisability of the masked faces: min {min(scores):.3f}, median {np.median(scores):.3f}, "
          f"under the gate 0.5: {sum(v < 0.5 for v in scores)} of {len(scores)}")


def tail_rise(scores: np.ndarray, fars: np.ndarray) -> tuple[np.ndarray, float]:
    """Thresholds at each false-accept rate of ``fars`` and their least-squares rise per tenfold smaller FAR."""
    cuts = np.array([np.quantile(scores, 1.0 - f) for f in fars])
    return cuts, float(-np.polyfit(np.log10(fars), cuts, 1)[0])


def enrolled_faces(candidates: np.ndarray, q: np.ndarray, image: np.ndarray, n: int) -> list[int]:
    """The ``n`` best-quality faces of ``candidates``, one per photo (bench/identify.py --wider's choice)."""
    chosen: list[int] = []
    photos: set[str] = set()
    for i in candidates[np.argsort(-q[candidates], kind="stable")]:
        if image[i] not in photos:
            chosen.append(int(i))
            photos.add(str(image[i]))
            if len(chosen) == n:
                break
    return chosen


def gallery_size(cache: Path, identify_db: Path | None, min_quality: float = 0.13,
                 sizes: tuple[int, ...] = (20, 50, 100, 200)) -> None:
    """The rise of the naming bar with the number of people enrolled, and what it does to names."""
    from dataclasses import replace

    from facelake.identities.matching import CALIBRATED, Gallery, Namer
    from facelake.vision.models import FUSION
    from facelake.vision.recognisability import GATE, calibrations

    z = dict(np.load(cache / "wider_dev.npz"))
    X, q, image, even = z["fusion"].astype(np.float32), z["quality"], z["image"], z["even"]
    rec = calibrations()[FUSION].score(X)
    ok = (q >= min_quality) & (rec >= GATE)
    t = CALIBRATED[FUSION]
    fars = np.logspace(-3, -4, 5)
    print("different people (every two recognisable faces of different photos), threshold at FAR per pair "
          + " ".join(f"{f:.1e}" for f in fars))
    for label, half in (("even", even), ("odd", ~even)):
        idx = np.nonzero(ok & half)[0]
        iu = np.triu_indices(len(idx), 1)
        other = image[idx][iu[0]] != image[idx][iu[1]]
        impostor = (X[idx].astype(np.float64) @ X[idx].T.astype(np.float64))[iu][other]
        cuts, rise = tail_rise(impostor, fars)
        print(f"  {label} half, {len(impostor)} pairs: " + " ".join(f"{c:.4f}" for c in cuts)
              + f"; rise per tenfold {rise:.4f}" + (f" -> gallery_extra {round(rise, 3)} (CALIBRATED: {t.gallery_extra})"
                                                     if label == "even" else " (held out)"))
    before = replace(t, gallery_extra=0.0)
    print(f"\nwider_dev, N faces enrolled, every other face a stranger: names given without / with gallery_extra "
          f"{t.gallery_extra} over {t.gallery_reference} people")
    for label, half in (("even", even), ("odd", ~even), ("whole", np.ones(len(X), bool))):
        cells = []
        for n in sizes:
            chosen = enrolled_faces(np.nonzero(half & ok)[0], q, image, n)
            if len(chosen) < n:
                continue
            person = {i: k for k, i in enumerate(chosen)}
            gallery = Gallery(t.identify, t.margin).fit(X[chosen], np.arange(len(chosen)))
            counts = []
            for th in (before, t):
                namer = Namer(gallery, th, min_quality)
                named = 0
                for photo in np.unique(image[half]):
                    rows = np.nonzero(half & (image == photo))[0]
                    probes = [int(i) for i in rows if int(i) not in person]
                    if probes:
                        decisions = namer.name_image(X[probes], [float(v) for v in q[probes]],
                                                     taken={person[int(i)] for i in rows if int(i) in person},
                                                     recognisability=[float(rec[i]) for i in probes])
                        named += sum(p is not None for p, _ in decisions)
                counts.append(named)
            cells.append(f"N={n}: {counts[0]} -> {counts[1]} (bar +{Namer(gallery, t, min_quality).gallery_extra():.4f})")
        print(f"  {label:5} half: " + "; ".join(cells))
    if identify_db is None:
        return
    ident = identify_faces(identify_db)
    G, names = ident["G"].astype(np.float32), list(ident["gname"])
    crowd = enrolled_faces(np.nonzero(ok)[0], q, image, max(sizes))
    print(f"\nidentify bench probes in a gallery of its {len(G)} people plus clear wider_dev faces: right / wrong names "
          "of enrolled people's photos, and strangers named, without -> with gallery_extra")
    known = np.isin(ident["person"], ident["gname"])
    for n in sizes:
        extra = crowd[: max(0, n - len(G))]
        gallery = Gallery(t.identify, t.margin).fit(np.vstack([G, X[extra]]), np.arange(len(G) + len(extra)))
        cells = []
        for camera in ("clean", "cctv"):
            m = np.nonzero(ident["camera"] == camera)[0]
            pair = []
            for th in (before, t):
                namer = Namer(gallery, th, min_quality)
                right = wrong = strangers = 0
                for i in m:
                    p, _ = namer.name_image(ident["P"][i:i + 1].astype(np.float32), [float(ident["q"][i])],
                                            recognisability=[float(ident["r"][i])])[0]
                    if p is None:
                        continue
                    if not known[i]:
                        strangers += 1
                    elif p < len(G) and names[p] == ident["person"][i]:
                        right += 1
                    else:
                        wrong += 1
                pair.append(f"{right}/{wrong}/{strangers}")
            cells.append(f"{camera} {pair[0]} -> {pair[1]}")
        print(f"  {len(G) + len(extra)} people: " + ", ".join(cells)
              + f" (of {int((known & (ident['camera'] == 'clean')).sum())} photos of enrolled people and "
              f"{int((~known & (ident['camera'] == 'clean')).sum())} of strangers per camera)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["extract", "fit", "clusters", "naming", "sharp", "masks", "gallery"])
    parser.add_argument("--facedata", type=Path, default=ROOT.parent / "shared" / "facedata")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/facelake-ers"))
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--identify-db", type=Path, help="sharp, masks, gallery: the facelake.duckdb bench/identify.py left")
    parser.add_argument("--keep", type=float, default=0.97, help="share of the even half's clear faces the gate keeps")
    args = parser.parse_args()
    if args.step == "extract":
        extract(args.facedata, args.cache)
    elif args.step == "fit":
        fit(args.cache, args.write, args.keep)
    elif args.step == "clusters":
        clusters(args.cache)
    elif args.step == "naming":
        naming(args.cache)
    elif args.step == "sharp":
        sharp(args.cache, args.identify_db)
    elif args.step == "gallery":
        gallery_size(args.cache, args.identify_db)
    else:
        masks(args.identify_db)


if __name__ == "__main__":
    sys.exit(main())

"""Large photos (issue #21): the detector's and the decoder's shortcuts give the same faces."""

from __future__ import annotations

import numpy as np

from .conftest import paste


def test_a_group_of_large_faces_in_a_large_photo_is_not_searched_as_a_crowd(
    patches: dict[str, np.ndarray],
) -> None:
    """Six faces of ~110 px in a 12-MP photo are 28 px in the shrunk pass, so all six are
    confirmed on full-resolution crops; they used to count as a crowd, and the whole photo
    went through the network again at 2x for faces under 64 px (4 s of one photo on this
    machine). Only faces small enough for that search make a crowd now; all six are found."""
    from facelake.vision.detect import RetinaFaceDetector
    from facelake.vision.models import retinaface_session

    rng = np.random.default_rng(3)
    photo = rng.integers(90, 140, size=(3000, 4000, 3), dtype=np.uint8)
    centres = []
    for i, name in enumerate(["obama", "biden", "astronaut"] * 2):
        x, y = 300 + i * 600, 1200 + (i % 2) * 500
        paste(photo, patches[name], x, y, round(110 * 2.2))
        centres.append((x + 121, y + 150))
    detector = RetinaFaceDetector(retinaface_session())
    zoomed: list[int] = []
    search = detector._zoom
    detector._zoom = lambda image: zoomed.append(1) or search(image)  # type: ignore[method-assign]
    faces = detector.detect(photo)
    hits = sum(any(abs(f.box[0] + f.box[2] / 2 - cx) < 60 and abs(f.box[1] + f.box[3] / 2 - cy) < 80
                   for f in faces) for cx, cy in centres)
    assert hits == 6, [f.box for f in faces]
    assert min(f.box[2] for f in faces) > 64
    assert not zoomed

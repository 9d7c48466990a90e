"""Photos given on the command line or through the API: read, decode, analyse, pick the face meant."""

from __future__ import annotations

from pathlib import Path

from ..config import Settings
from ..errors import ConfigError, ImageUnreadable, NoFaceFound, UnclearFace
from ..pipeline import Job, make_job
from ..sources.base import is_video_name
from ..sources.decode import ImageMeta, decode_image
from ..sources.folder import FolderSource, file_entry
from ..vision.analyzer import FaceAnalyzer
from ..vision.recognisability import recognisable
from ..vision.types import Face

Photo = tuple[Job, ImageMeta, list[Face], int]
"""A photo read and analysed, with the index of the face meant."""


def pick_face(path: Path, faces: list[Face], face: int | None) -> int:
    """The face a command means: the only one, or the one ``--face`` names."""
    if not faces:
        raise NoFaceFound(f"{path}: no face found; the photo must show the person's face")
    if face is None:
        if len(faces) > 1:
            sizes = ", ".join(f"{i}: {f.detection.box[2]:.0f} px wide" for i, f in enumerate(faces))
            raise ConfigError(f"{path}: {len(faces)} faces ({sizes}); pick one with --face N (0 = largest)")
        return 0
    if not 0 <= face < len(faces):
        raise ConfigError(f"{path}: --face must be between 0 and {len(faces) - 1}, got {face}")
    return face


def check_enrollable(path: Path, faces: list[Face], chosen: int, settings: Settings) -> None:
    """Refuse a face that must not become an enrollment, saying why and what to do instead.

    An enrolled face is what every later face is compared with: a cat the detector half
    believed in, a masked or heavily blurred face would name strangers ever after (their
    embeddings sit where every unrecognisable face does), so such a photo enrolls nothing.
    """
    face = faces[chosen]
    if face.detection.score < settings.enroll_min_det_score:
        raise UnclearFace(
            f"{path}: the detector is not sure this is a face (score {face.detection.score:.2f}, enrollment needs "
            f"{settings.enroll_min_det_score:.2f}); use a clear, well-lit photo of the person's face")
    needed = max(settings.enroll_min_recognisability, settings.min_recognisability)
    if not recognisable(face.recognisability, needed):
        assert face.recognisability is not None
        raise UnclearFace(
            f"{path}: the face cannot be recognised well enough to enroll (recognisability "
            f"{face.recognisability:.2f}, enrollment needs {needed:.2f}: covered, turned away, "
            "blurred or too small); use a sharp photo of the uncovered face, looking at the camera")
    if face.quality < settings.enroll_min_quality:
        raise UnclearFace(
            f"{path}: the face is too small or too blurred to enroll (quality {face.quality:.2f}, "
            f"{face.detection.width:.0f} px wide; enrollment needs {settings.enroll_min_quality:.2f}); use a sharp "
            "photo where the face is at least 80 px wide")


def photo_faces(
    path: Path, camera: str, face: int | None, settings: Settings, analyzer: FaceAnalyzer
) -> Photo:
    """Read, decode and analyse a photo given on the command line; returns the chosen face's index too."""
    if not (path.exists() or path.is_symlink()):  # a usage error, like a missing ingest source
        raise ConfigError(f"{path}: no such file")
    if is_video_name(path.name):  # a clip's faces are a track's: enroll or search from a still of it
        raise ImageUnreadable(f"{path}: this is a video; give a photo (a frame saved from the clip will do), "
                              "or ingest the clip and name its face in the dashboard")
    job = make_job(file_entry(path, camera), FolderSource(path, camera), int(settings.max_file_mb * 1e6))
    if job.data is None:
        raise ImageUnreadable(f"{path}: {job.error}")
    decoded = decode_image(job.data, settings.max_pixels)
    faces = analyzer.analyze(decoded.pixels)
    return job, decoded.meta, faces, pick_face(path, faces, face)

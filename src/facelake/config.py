"""One validated configuration for the whole program.

Every threshold and limit lives here, with its bounds and the reason for its default, so a
value is never hard-coded twice. Values come, in increasing priority, from the defaults
below, a TOML file (``FACELAKE_CONFIG`` or ``--config``), and ``FACELAKE_*`` environment
variables. Unknown keys are rejected: a typo in a config file must not silently fall back
to a default.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigError
from .vision.models import DETECTORS, EMBEDDERS, RESNET_BACKENDS, choose

_MODEL_CHOICES: dict[str, Mapping[str, object]] = {
    "detector": DETECTORS, "embedder": EMBEDDERS, "embed_backend": RESNET_BACKENDS,
}
"""The settings that name a model, and the registry tables (vision/models.py) their values come from."""


class CameraSettings(BaseModel):
    """One live camera of ``[cameras.NAME]``: ``facelake watch NAME`` (or a bare ``watch``) follows it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(title="Stream URL", description="rtsp://, http(s):// (MJPEG, MPEG-TS) or /dev/videoN. Put "
                     "credentials in the environment and write ${VAR} here: they are filled in when the stream "
                     "opens, and never stored or logged.")
    fps: float | None = Field(None, gt=0, le=60.0, title="Frames analysed per second (default: video_fps)")


class Settings(BaseSettings):
    """facelake settings (env prefix ``FACELAKE_``)."""

    model_config = SettingsConfigDict(env_prefix="FACELAKE_", extra="forbid", frozen=True)

    db: Path | str = Field(
        Path("facelake.duckdb"),
        title="Database",
        description="A DuckDB file (the embedded default), or a postgresql://user:password@host:port/dbname "
        "URL for a PostgreSQL server that many processes write to (the 'postgres' extra).",
    )

    @field_validator("db", mode="before")
    @classmethod
    def _db_target(cls, value: object) -> object:
        from .store.base import as_target

        return as_target(value) if isinstance(value, str | Path) else value

    # --- decoding limits (the decompression-bomb and huge-upload guards) ---
    max_file_mb: float = Field(
        100.0, gt=0, le=10_000, title="Largest accepted file (MB)",
        description="Files above this size are recorded as errors without being decoded.",
    )
    max_pixels: int = Field(
        80_000_000, ge=1_000_000, le=1_000_000_000, title="Largest accepted image (pixels)",
        description="Images with more pixels are refused before decoding (decompression bombs); a worker "
        "also holds at most this many decoded pixels at once (a batch is analysed in groups within it).",
    )

    # --- detection ---
    detector: str = Field(
        "retinaface", title="Face detector", json_schema_extra={"enum": list(DETECTORS)},
        description="'retinaface' (default: finds small, blurred and turned faces), 'hog' "
        "(dlib's HOG, as face_recognition uses it: frontal faces of ~40 px and more) or 'mtcnn' "
        "(the P/R/O-Net cascade; needs the 'mtcnn' extra).",
    )
    det_threshold: float = Field(
        0.6, ge=0.01, le=0.99, title="Detection score threshold",
        description="RetinaFace confidence needed to keep a face. 0.6 keeps blurred, dark "
        "CCTV faces that the package default (0.9) drops, at no false positive on the dev photos.",
    )
    nms_iou: float = Field(
        0.4, ge=0.1, le=0.9, title="NMS overlap", description="IoU above which overlapping boxes merge.",
    )
    detect_min_side: int = Field(
        640, ge=128, le=4096, title="Upscale small images to this long side",
        description="Small images (thumbnails, CCTV crops) are enlarged before detection so "
        "their faces reach the sizes RetinaFace's anchors were trained on (16-512 px).",
    )
    detect_max_side: int = Field(
        1024, ge=320, le=8192, title="First-pass long side for large images",
        description="Larger images are searched shrunk to this size first; small faces found "
        "there are confirmed on full-resolution crops (see detect_refine_below_px).",
    )
    detect_refine_below_px: int = Field(
        40, ge=0, le=512, title="Re-check candidates narrower than this (px, shrunk frame)",
        description="Candidates this small in the shrunk frame are searched again in an enlarged "
        "full-resolution crop, so a 24-px face in a 1080p frame is still found; 0 turns it off.",
    )
    detect_candidate_threshold: float = Field(
        0.02, ge=0.001, le=0.99, title="Candidate score for the re-check",
        description="First-pass score from which a small face is worth a second look.",
    )
    max_upscale: float = Field(
        8.0, ge=1.0, le=16.0, title="Largest upscale factor for detection",
        description="Caps the enlargement of tiny images.",
    )
    min_face_px: int = Field(
        6, ge=4, le=512, title="Smallest face kept (px)",
        description="Detections narrower than this in the original image are dropped. 6 px keeps what the "
        "network finds in crowds (bench/detection.py: AP on faces under 12 px 0.10 at 12, 0.67 at 6) with one "
        "detection under 12 px, a 4-px false one, on the 561 development images and frames.",
    )

    # --- embedding ---
    embedder: str = Field(
        "fusion", title="Face embedder", json_schema_extra={"enum": list(EMBEDDERS)},
        description="'fusion' (both networks below, each on its own chip, one 320-D vector), 'dlib' "
        "(dlib's ResNet, 128-D, aligned the dlib way) or 'mobilefacenet' (sirius-ai's MobileFaceNet, "
        "192-D, ArcFace-style; docs/models.md). Every embedding row "
        "names its model and vectors of two models are never compared; `facelake reembed` "
        "recomputes stored faces with another model.",
    )
    embed_backend: str = Field(
        "onnx-int8", title="Embedder implementation", json_schema_extra={"enum": list(RESNET_BACKENDS)},
        description="How dlib's ResNet runs: 'onnx-int8' rebuilt as ONNX from its own weights and "
        "quantized to int8 (~30x faster than dlib, descriptors at cosine 0.9998 on average to float32's); 'onnx' the same "
        "graph in float32 (identical descriptors, ~15x faster); 'dlib' through dlib itself (the reference).",
    )

    @field_validator(*_MODEL_CHOICES)
    @classmethod
    def _registered(cls, value: str, info: ValidationInfo) -> str:
        """A model name must be in the registry; the error names the setting, the choices and the value.

        Validated against the registry itself, not a copy of its names, so a model added there
        is a valid setting with no edit here.
        """
        assert info.field_name is not None
        choose(info.field_name, value, _MODEL_CHOICES[info.field_name])
        return value

    embed_flip: bool = Field(
        True, title="Add the mirrored chip",
        description="Average the embedding of the aligned chip and its mirror image: a cheap "
        "test-time augmentation that steadies low-resolution faces.",
    )

    embed_lowres_px: int = Field(
        20, ge=0, le=150, title="Low-resolution view (px)",
        description="Also embed each face as it would look this many pixels wide and average, so "
        "sharp photos and tiny camera faces of one person match; 0 turns it off.",
    )

    # --- stored crops and quality ---
    thumb_px: int = Field(
        96, ge=32, le=512, title="Face thumbnail size (px)", description="Side of the stored face crop.",
    )
    thumb_quality: int = Field(85, ge=30, le=100, title="Face thumbnail JPEG quality")
    keep_face_context: bool = Field(
        True, title="Keep each face with room around it (for re-embedding)",
        description="A JPEG of the face with a face-width of margin (at most 320 px, ~15-25 kB), so "
        "`facelake reembed` can embed it with another model when the source image is gone. Erased "
        "with the embedding (retention, forget, 'not a face').",
    )

    # --- ingest ---
    workers: int = Field(
        0, ge=0, le=64, title="Worker processes",
        description="0 picks one process per CPU core (the models are single-threaded per worker).",
    )
    batch_images: int = Field(
        8, ge=1, le=256, title="Images per worker task",
        description="Each worker analyses this many images at a time and embeds all their faces "
        "in one batch; larger batches amortise the embedder, smaller ones show progress sooner.",
    )
    match_threshold: float | None = Field(
        None, ge=-1.0, le=1.0, title="Same-person cosine threshold (one pair)",
        description="None: the embedder's calibrated value (identities/calibration.py; fusion 0.858, "
        "dlib 0.935, MobileFaceNet 0.6). Two faces at least this similar are taken to be the same person "
        "(alert debounce of look-alike strangers).",
    )
    identify_threshold: float | None = Field(
        None, ge=-1.0, le=1.0, title="Cosine similarity needed to name a face",
        description="None: the embedder's calibrated value, at a false-accept rate of 0.1 % per pair "
        "(fusion 0.879, dlib 0.958, MobileFaceNet 0.66; bench/identify.py). Stricter than one pair's "
        "threshold because a stranger gets one try per enrolled face; raised for low-quality faces "
        "where the model needs it (docs/accuracy.md has the score distributions behind each value).",
    )
    identify_gallery_extra: float | None = Field(
        None, ge=0.0, le=0.2, title="Rise of the naming bar per tenfold of enrolled people",
        description="A stranger is compared with every enrolled person, so with more people enrolled "
        "one of them scores over a fixed bar more often; every bar rises by this much per tenfold of "
        "people beyond 20 (log-scale: +0.007 at 50, +0.0126 at 100 with fusion's value). None: the "
        "embedder's calibrated value (fusion 0.018, the rise of its different-person scores per tenfold "
        "smaller false-accept rate; dlib and MobileFaceNet 0, not measured). 0 keeps the bar fixed: more "
        "tiny camera faces named in a large gallery, and more strangers (docs/accuracy.md, \"Larger galleries\").",
    )
    match_margin: float | None = Field(
        None, ge=0.0, le=1.0, title="Margin over the second-best person",
        description="A face is named only if its best person beats the next one by this much, so "
        "a face that looks like two enrolled people stays unknown. None: the embedder's calibrated "
        "value, a fifth of the spread of its different-person scores (fusion 0.0083, dlib 0.005, "
        "MobileFaceNet 0.032).",
    )
    identify_min_quality: float = Field(
        0.13, ge=0.0, le=1.0, title="Lowest face quality that is named automatically",
        description="Tiny, blurred or doubtful faces are stored but left unknown. Measured on the "
        "dev photos: clean portraits 0.5-1.0, CCTV copies with 40-px faces 0.15-0.25, with 24-px "
        "faces 0.09-0.12 — so 40-px camera faces are named and 24-px ones are not.",
    )
    enroll_min_det_score: float = Field(
        0.8, ge=0.0, le=1.0, title="Lowest detector score an enrollment photo's face may have",
        description="A face the detector doubts is often no face (scikit-image's cat scores 0.65) or a "
        "covered one; the sample portraits score 0.99 or more. Such a photo is refused, nothing is written.",
    )
    enroll_min_quality: float = Field(
        0.3, ge=0.0, le=1.0, title="Lowest face quality an enrollment photo's face may have",
        description="Size and sharpness (vision/analyzer.py's quality). An enrollment photo's face is the template every "
        "later face is compared with, so it must be better than a face that is merely named "
        "(identify_min_quality): the development set's first photos of each person score 0.45-0.76 "
        "(ORL's 92x112 grey portraits included), a portrait shrunk to a 16-px face 0.09, a box-blurred "
        "one 0.16-0.17. Such a photo is refused, nothing is written.",
    )
    enroll_min_recognisability: float = Field(
        0.53, ge=0.0, le=1.0, title="Lowest recognisability an enrollment photo's face may have",
        description="Stricter than naming's gate (min_recognisability; the higher of the two applies): an "
        "enrolled face is what every later face is compared with. 0.53 is above 90 % of the development "
        "crowds' heavily occluded faces (a helmet and a mask leaving the eyes: 0.45-0.51) and below 99 % "
        "of the development set's clean portraits (the sample photos score 0.64-0.69).",
    )
    min_recognisability: float = Field(
        0.5, ge=0.0, le=1.0, title="Lowest recognisability that is named, clustered or enrolled",
        description="How far a face's embedding carries an identity at all (vision/recognisability.py: its "
        "distance from where masked, helmeted, profile and heavily blurred faces embed, with its quality). "
        "Each embedder's score is calibrated so that 0.5 keeps 96 % of clear faces of the development crowds "
        "and drops about 9 in 10 of those nobody could recognise (held-out half, fused embedder); below it a face is stored and shown as "
        "unclear, never named, clustered, enrolled or averaged into a track's template.",
    )
    cluster_threshold: float | None = Field(
        None, ge=-1.0, le=1.0, title="Similarity to a cluster's centre needed to join it",
        description="None: the embedder's calibrated value (fusion 0.88, dlib 0.96, MobileFaceNet 0.65), "
        "chosen with bench/clustering.py so a crowd of strangers stays apart (largest cluster 4-6) while "
        "repeat visitors group (BCubed F 0.98-1.00).",
    )
    bucket_read_threads: int = Field(
        4, ge=1, le=64, title="Bucket objects downloaded at once",
        description="Downloads overlap their network round trips; measured against the GCS emulator "
        "(docs/cloud.md) 4 was best, and more threads than the server serves at once only queue.",
    )
    watch_settle_s: float = Field(
        1.0, ge=0.0, le=600.0, title="Seconds a new file must stay unchanged before it is read",
        description="`facelake watch` takes a file once its size and mtime have not changed for this "
        "long, so frames written in pieces (FTP uploads, slow cards) are read whole.",
    )
    watch_clip_settle_s: float = Field(
        15.0, ge=0.0, le=3600.0, title="Seconds a new video clip must stay unchanged before it is read",
        description="Recorders, FTP and SMB copies write a clip for minutes with pauses of seconds: read "
        "early, one recording would be stored as several partial clips (or errors, for an MP4 whose "
        "index comes last).",
    )
    watch_poll_s: float = Field(
        30.0, ge=0.5, le=86_400.0, title="Seconds between two listings of a watched bucket",
        description="Buckets send no events to a plain client; `facelake watch` lists them this often "
        "(the Cloud Function is the event-driven way).",
    )
    watch_queue: int = Field(
        256, ge=1, le=100_000, title="Images waiting for the models, at most",
        description="The bounded queue between followers and ingest: when the models fall behind, "
        "followers wait instead of piling up work in memory.",
    )
    watch_lend_s: float = Field(
        1.0, ge=0.0, le=3600.0, title="Idle seconds after which watch lets go of a DuckDB file",
        description="DuckDB lets one process hold a file: `facelake watch` closes it when nothing arrived "
        "for this long, so `facelake sql`, `visits` and `report` can read it meanwhile (0: never).",
    )
    watch_reopen_s: float = Field(
        120.0, ge=1.0, le=86_400.0, title="Seconds watch waits for a DuckDB file another command holds",
        description="When files arrive while a read (`facelake sql` …) holds the database, watch waits "
        "this long for it before it stops with an error; the files wait in its queue meanwhile.",
    )
    # --- cloud (the Cloud Function reads these from FACELAKE_* variables) ---
    lake_uri: str | None = Field(
        None, title="Parquet lake the Cloud Function writes",
        description="gs://BUCKET/lake (or s3://, or a folder): one images/ and one sightings/ Parquet "
        "file per image; `facelake import` brings it into the database, and `forget` and `purge` "
        "erase it as they erase the database.",
    )
    bigquery_dataset: str | None = Field(
        None, title="BigQuery dataset (PROJECT.DATASET)",
        description="Where the Cloud Function writes rows directly, and `export --bigquery`'s default.",
    )
    bigquery_endpoint: str | None = Field(
        None, title="BigQuery API endpoint (emulators only)",
        description="Points the BigQuery client at an emulator with anonymous credentials; leave "
        "unset for Google's service, which uses the standard credential chain.",
    )
    gallery_uri: str | None = Field(
        None, title="Gallery file the Cloud Function names faces with",
        description="What `facelake people export` wrote (gs://BUCKET/gallery.npz); re-read when it changes.",
    )
    function_reload_s: float = Field(
        60.0, ge=0.0, le=86_400.0, title="Seconds between two checks of the gallery file",
        description="A warm function instance re-reads the gallery at most this often.",
    )
    function_prefix: str = Field(
        "", max_length=1024, title="Key prefix the Cloud Function takes images from",
        description="The camera of an object is the first folder under this prefix, the rule "
        "`facelake ingest gs://BUCKET/PREFIX` follows, so the function and ingest name it alike "
        "(`cams` makes cams/frontdoor/x.jpg camera frontdoor). Objects outside it are ignored "
        "(the lake and the gallery, when they live beside it).",
    )

    session_hours: float = Field(
        12.0, gt=0, le=24 * 30, title="Dashboard session lifetime (hours)",
        description="A dashboard login lasts this long from the moment it was made, then the login form asks "
        "for the token again (sessions live in the server's memory and end with it too).",
    )
    allowed_hosts: list[str] = Field(
        ["*"], min_length=1, title="Host names the server answers to",
        description="The Host header a request must carry (e.g. [\"127.0.0.1\", \"localhost\", \"cams.home.arpa\"]); "
        "others get 400, which defeats DNS rebinding. '*' (the default) accepts any; a leading '*.' any subdomain.",
    )
    map_tile_url: str | None = Field(
        None, title="Map tile URL for the dashboard (optional)",
        description="The dashboard's map draws GPS points on plain coordinates, offline. A tile server "
        "of your own (e.g. http://127.0.0.1:8080/{z}/{x}/{y}.png) may be named here; nothing is fetched otherwise.",
    )
    alerts_file: Path | None = Field(
        None, title="Alert rules (TOML)",
        description="Rules and outputs (webhook, MQTT) for alerts on stored faces; see alerts/rules.py.",
    )
    retention_days: int = Field(
        30, ge=1, le=3650, title="Days unknown faces keep their embedding and crop",
        description="Afterwards `facelake purge` (also run after every ingest) erases them.",
    )

    # --- video clips and live streams (sources/video.py, vision/track.py) ---
    video_fps: float = Field(
        5.0, gt=0, le=60.0, title="Frames analysed per second of video",
        description="Frames are sampled at this rate by timestamp; 5/s sees a walking person's face "
        "several times while leaving decoding (~3 ms a 1080p frame, bench/video_decode.py) the minor cost.",
    )
    video_keyframes_only: bool = Field(
        False, title="Fast scan: decode key frames only",
        description="The decoder skips every non-key frame unread (about 2x faster on a 2-s GOP, more on "
        "longer ones); the analysis rate becomes the clip's key-frame rate.",
    )
    video_motion_threshold: float = Field(
        0.002, ge=0.0, le=1.0, title="Changed fraction of the grey copy that counts as motion",
        description="A sampled frame is skipped when fewer than this fraction of its 64-px grey copy's cells "
        "changed by 10 grey levels since the last analysed frame; 0 analyses every sampled frame.",
    )
    video_motion_refresh_s: float = Field(
        1.0, gt=0.0, le=60.0, title="Analyse a frame at least this often (s)",
        description="Even with no motion, so a person standing still is seen again; keep it under "
        "track_max_age_s or still people's tracks end and restart.",
    )
    video_scene_cut: float = Field(
        0.5, gt=0.0, le=1.0, title="Grey-histogram distance that marks a scene cut",
        description="A sampled frame this far (half L1, 0..1) from the previous one is a cut: every open track ends.",
    )
    video_max_duration_s: float = Field(
        4 * 3600.0, gt=0.0, le=7 * 86_400.0, title="Longest accepted clip (s)",
        description="Longer clips are recorded as errors (by header, and again while decoding).",
    )
    video_max_pixels: int = Field(
        3840 * 2160, ge=100_000, le=100_000_000, title="Largest accepted video frame (pixels)",
        description="4K UHD by default; 8K frames cost ~33 MB each in RGB and are refused as recorded errors.",
    )
    video_max_file_mb: float = Field(
        4000.0, gt=0, le=1_000_000, title="Largest accepted video file (MB)",
        description="Video files above this size are recorded as errors without being decoded "
        "(images keep max_file_mb); they are hashed streamed, never read whole.",
    )
    track_max_age_s: float = Field(
        2.0, gt=0.0, le=600.0, title="A track ends after this long unseen (s)",
        description="Long enough to bridge a missed detection or a passer-by's occlusion, short enough that "
        "one person leaving and another entering at the same spot are two tracks.",
    )
    track_top_k: int = Field(
        3, ge=1, le=50, title="Best faces kept per track",
        description="The highest-quality faces of a track become its sightings; the rest only feed its template.",
    )
    track_min_similarity: float | None = Field(
        None, ge=-1.0, le=1.0, title="Embedding similarity below which an overlapping face is someone else",
        description="None: 0.8 for fusion (one person across frames 0.93-0.98, two people 0.74-0.78 on the sample "
        "photos); for other embedders set it a little above their different-person scores.",
    )
    track_strong_similarity: float | None = Field(
        None, ge=-1.0, le=1.0, title="Embedding similarity that joins a face to a track without overlap",
        description="None: the embedder's calibrated match threshold; used near the predicted position, to "
        "carry a track across a missed detection or occlusion.",
    )
    track_early_frames: int = Field(
        3, ge=1, le=1000, title="A live track is written once seen in this many frames",
        description="So a person in front of a live camera is named, alerted and shown within a second or so "
        "(3 frames at 5/s), not only after they leave; the row is updated when the track ends.",
    )
    stream_queue: int = Field(
        8, ge=1, le=10_000, title="Frames waiting per live stream, at most",
        description="When the models fall behind, the oldest frame is dropped (and counted) rather than lag growing.",
    )
    stream_timeout_s: float = Field(
        20.0, gt=0.0, le=3600.0, title="Seconds a new stream has to deliver its first frame",
        description="A wrong URL or a camera that accepts connections but sends nothing becomes a clear error.",
    )
    stream_backoff_max_s: float = Field(
        30.0, gt=0.0, le=3600.0, title="Longest wait between two reconnection attempts (s)",
        description="Reconnects start after 0.5 s and double up to this, so a camera rebooting is back within "
        "seconds while one that is gone costs little.",
    )
    cameras: dict[str, CameraSettings] = Field(
        default_factory=dict, title="Live cameras by name",
        description="Tables [cameras.NAME] with url (and fps): the camera's name is NAME on every row it writes.",
    )
    visit_gap_s: float = Field(
        300.0, ge=0.0, le=7 * 86_400.0, title="Tracks closer than this are one visit (s)",
        description="Tracks of one person (or one group of unknown faces) on one camera, each starting at most "
        "this long after the ones before it ended, form one visit, which reports and the dashboard count "
        "instead of frames: 5 minutes bridges someone stepping out of view and back, while a return "
        "later in the day is another visit. 0 joins only tracks that overlap or touch.",
    )


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from a TOML file (if any), the environment, and explicit overrides.

    Explicit overrides (CLI options) win over the environment, which wins over the file.
    """
    import os

    file_values: dict[str, Any] = {}
    path = config_file or (Path(os.environ["FACELAKE_CONFIG"]) if os.environ.get("FACELAKE_CONFIG") else None)
    if path is not None:
        try:
            file_values = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    env_values = {
        name: os.environ[f"FACELAKE_{name.upper()}"]
        for name in Settings.model_fields
        if f"FACELAKE_{name.upper()}" in os.environ
    }
    given = {k: v for k, v in overrides.items() if v is not None}
    merged = {**file_values, **env_values, **given}
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        where = {k: str(path) for k in file_values} | {k: f"FACELAKE_{k.upper()}" for k in env_values} \
            | {k: "option" for k in given}
        raise ConfigError(explain(exc, where)) from exc


def explain(exc: ValidationError, where: Mapping[str, str]) -> str:
    """A person's reading of pydantic's errors: each setting with where it came from, what it must
    be and (unless it may hold a secret) the value given; no pydantic URLs or error codes.

    ``where`` maps a top-level setting to its source (the TOML file, ``FACELAKE_NAME``, ``option``).
    """
    lines = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"]]
        name = ".".join(loc) or "settings"
        source = f" (from {where[loc[0]]})" if loc and loc[0] in where else ""
        if err["type"] == "extra_forbidden":
            known = Settings.model_fields if len(loc) == 1 else {}
            close = difflib.get_close_matches(loc[-1], list(known), n=1)
            lines.append(f"{name}{source} is not a setting" + (f"; did you mean {close[0]}?" if close else ""))
            continue
        message = str(err["msg"]).removeprefix("Value error, ").replace("Input should be", "must be")
        value = err.get("input")
        shown = "" if isinstance(value, str) and ("://" in value or "@" in value) or isinstance(value, dict) \
            else f", got {value!r}"
        lines.append(f"{name}{source}: {message}" + ("" if "got " in message else shown))
    return "invalid settings: " + "; ".join(lines)

"""The per-process side of the pipeline: decode and analyse batches of jobs with models loaded once.

A :class:`Worker` is one object per process (a local pool worker, a Ray actor, a Cloud
Function instance, or the main process when it runs the models itself). It holds its
models and its limits and nothing else; no module state, so two workers with different
settings can live side by side (the API's and a test's, say).
"""

from __future__ import annotations

import io
import warnings
from typing import Any

from PIL import Image

from ..config import Settings
from ..errors import FacelakeError
from ..sources.base import is_video_name
from ..sources.decode import DecodedImage, decode_image
from ..vision.analyzer import AnalyzerOptions, FaceAnalyzer
from .records import ImageResult, Job, OnClip, VideoOptions


def analyzer_options(settings: Settings) -> AnalyzerOptions:
    return AnalyzerOptions.from_settings(settings)


class Worker:
    """Decodes each job's image (capturing errors per image) and analyses the good ones together;
    a video clip is sampled and tracked (:func:`~facelake.pipeline.video.analyse_video`)."""

    def __init__(self, options: AnalyzerOptions, max_pixels: int, video: VideoOptions | None = None) -> None:
        self.options, self.max_pixels = options, max_pixels
        self.video = video or VideoOptions()
        self.analyzer = FaceAnalyzer(options)
        self.cancel: Any = None
        """An event (threading or multiprocessing) that stops a clip in progress when set."""
        self.progress: OnClip | None = None
        """Hears how far a long clip got (see ``analyse_video``)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Worker:
        return cls(analyzer_options(settings), settings.max_pixels, VideoOptions.from_settings(settings))

    def load(self) -> Worker:
        """Load every model now, so a broken install fails before the first image, not during it."""
        self.analyzer.load()
        return self

    def process(self, jobs: list[Job]) -> list[ImageResult]:
        """One result per job, in order; any exception of one file's steps is that file's error.

        The images are analysed in groups of at most ``max_pixels`` decoded pixels (the limit
        on one image), each group decoded only once the one before it is done: the pixel limit
        then bounds a worker's memory, not just one image's. Decoding the whole batch first
        held eight images at once (64 PNGs of 8,900x8,900 peaked at 5.45 GB).
        """
        results: list[ImageResult | None] = [None] * len(jobs)
        decoded: list[tuple[int, DecodedImage]] = []
        pixels = 0
        for i, job in enumerate(jobs):
            if job.error is None and is_video_name(job.uri):
                results[i] = self._video(job)
                continue
            if job.data is None:
                results[i] = ImageResult(job, None, [], job.error or "unreadable")
                continue
            size = _pixels(job.data)
            if decoded and pixels + size > self.max_pixels:
                self._analyse(jobs, decoded, results)
                decoded, pixels = [], 0
            try:
                decoded.append((i, decode_image(job.data, max_pixels=self.max_pixels)))
            except FacelakeError as exc:
                results[i] = ImageResult(job.without_data(), None, [], str(exc))
                continue
            pixels += size
        self._analyse(jobs, decoded, results)
        return [r for r in results if r is not None]

    def _video(self, job: Job) -> ImageResult:
        # Imported here: PyAV and SciPy cost a photo-only worker ~50 MB and 0.3 s it never uses.
        from .video import analyse_video

        try:
            return analyse_video(self.analyzer, job, self.video, self.cancel, self.progress)
        except Exception as exc:  # noqa: BLE001 - one clip must never stop the run
            return ImageResult(job.without_data(), None, [], f"analysis failed: {type(exc).__name__}: {exc}")

    def _analyse(self, jobs: list[Job], decoded: list[tuple[int, DecodedImage]],
                 results: list[ImageResult | None]) -> None:
        """Find the faces of the decoded images together; should that fail, image by image, so the
        image that broke it gets the error and the others their faces."""
        if not decoded:
            return
        try:
            found = self.analyzer.analyze_many([d.pixels for _, d in decoded])
        except Exception:  # noqa: BLE001 - retried one by one just below
            found = None
        for n, (i, image) in enumerate(decoded):
            if found is not None:
                results[i] = ImageResult(jobs[i].without_data(), image.meta, found[n], None)
                continue
            try:
                faces = self.analyzer.analyze_many([image.pixels])[0]
            except Exception as exc:  # noqa: BLE001 - one image must never stop the run
                results[i] = ImageResult(jobs[i].without_data(), None, [],
                                         f"analysis failed: {type(exc).__name__}: {exc}")
            else:
                results[i] = ImageResult(jobs[i].without_data(), image.meta, faces, None)


def _pixels(data: bytes) -> int:
    """The pixel count an image's header states, read without decoding it (0 when it cannot be read:
    decoding then says why)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a bomb is refused, and said so, by the decode
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
    except Exception:  # noqa: BLE001 - the decode that follows records the error
        return 0
    return width * height

"""The gallery as a file: what a Cloud Function needs to name faces without a database.

``facelake people export gs://BUCKET/gallery.npz`` writes the enrolled embeddings, their
person ids and names, the embedding model and the thresholds; the function reads it (and
re-reads it when the object changes). It is a plain ``.npz`` read with
``allow_pickle=False``: no code can ride in it. It holds only enrolled people — the same
data the owner's database holds — and after ``facelake forget`` the owner re-exports it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ..errors import ConfigError
from ..sources.buckets import open_object
from .gallery import Gallery

FORMAT_VERSION = 1


@dataclass(frozen=True)
class GalleryFile:
    embeddings: NDArray[np.float32]
    person_ids: NDArray[np.int64]
    names: dict[int, str]
    model: str
    threshold: float
    margin: float

    def gallery(self) -> Gallery:
        return Gallery(self.threshold, self.margin).fit(self.embeddings, self.person_ids)

    def to_bytes(self) -> bytes:
        ids = np.array(sorted(self.names), dtype=np.int64)
        buf = io.BytesIO()
        np.savez_compressed(
            buf, format_version=np.array(FORMAT_VERSION), embeddings=self.embeddings.astype(np.float32),
            person_ids=self.person_ids.astype(np.int64), name_ids=ids,
            names=np.array([self.names[int(i)] for i in ids], dtype=np.str_), model=np.array(self.model),
            thresholds=np.array([self.threshold, self.margin], dtype=np.float64),
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> GalleryFile:
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                if int(z["format_version"]) != FORMAT_VERSION:
                    raise ConfigError(f"gallery file format {int(z['format_version'])} is not {FORMAT_VERSION}")
                return cls(z["embeddings"].astype(np.float32), z["person_ids"].astype(np.int64),
                           {int(i): str(n) for i, n in zip(z["name_ids"], z["names"])}, str(z["model"]),
                           float(z["thresholds"][0]), float(z["thresholds"][1]))
        except (OSError, KeyError, ValueError) as exc:
            raise ConfigError(f"not a facelake gallery file: {exc}") from exc


def write_gallery(gallery: GalleryFile, uri: str) -> None:
    """Write to ``gs://…``, ``s3://…`` or a local path."""
    bucket, key = open_object(uri)
    bucket.write(key, gallery.to_bytes())


def read_gallery(uri: str, max_bytes: int = 512 << 20) -> GalleryFile:
    bucket, key = open_object(uri)
    return GalleryFile.from_bytes(bucket.read(key, max_bytes))

"""Safe decoding: unusual-but-valid images decode right, broken or hostile ones fail clearly."""

from __future__ import annotations

import io
import random
import struct
import warnings
from datetime import datetime
from pathlib import Path

import numpy as np
import piexif
import pytest
from PIL import Image

from facelake.errors import ImageTooLarge, ImageUnreadable
from facelake.sources.decode import HEIF_SUPPORTED, decode_image
from facelake.vision.analyzer import FaceAnalyzer

MAX_PIXELS = 80_000_000


def _encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def obama(samples: Path) -> Image.Image:
    img = Image.open(samples / "obama.jpg").convert("RGB")
    return img.resize((img.width // 2, img.height // 2))


def _one_face(analyzer: FaceAnalyzer, data: bytes) -> None:
    decoded = decode_image(data, MAX_PIXELS)
    assert decoded.pixels.dtype == np.uint8 and decoded.pixels.shape[2] == 3
    assert len(analyzer.detect(decoded.pixels)) == 1


# --- unusual but valid --------------------------------------------------------------------


def test_png_with_alpha_is_composited(analyzer: FaceAnalyzer, obama: Image.Image) -> None:
    rgba = obama.convert("RGBA")
    alpha = np.full((rgba.height, rgba.width), 255, dtype=np.uint8)
    alpha[:, : rgba.width // 8] = 0
    rgba.putalpha(Image.fromarray(alpha))
    data = _encode(rgba, "PNG")
    decoded = decode_image(data, MAX_PIXELS)
    assert decoded.pixels[:, 0].min() == 255, "transparent area becomes white"
    _one_face(analyzer, data)


def test_16bit_png_is_scaled_not_clipped(analyzer: FaceAnalyzer, obama: Image.Image) -> None:
    gray8 = np.asarray(obama.convert("L"), dtype=np.uint16)
    img16 = Image.fromarray(gray8 * 257)
    assert img16.mode.startswith("I;16")
    data = _encode(img16, "PNG")
    decoded = decode_image(data, MAX_PIXELS)
    assert abs(int(decoded.pixels[..., 0].astype(int).mean()) - int(gray8.mean())) <= 1
    _one_face(analyzer, data)


def test_grayscale_png(analyzer: FaceAnalyzer, obama: Image.Image) -> None:
    _one_face(analyzer, _encode(obama.convert("L"), "PNG"))


def test_cmyk_jpeg(analyzer: FaceAnalyzer, obama: Image.Image) -> None:
    data = _encode(obama.convert("CMYK"), "JPEG", quality=90)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    decoded = decode_image(data, MAX_PIXELS)
    diff = np.abs(decoded.pixels.astype(int) - np.asarray(obama, dtype=int)).mean()
    assert diff < 12, "colours survive the CMYK round trip"
    _one_face(analyzer, data)


def test_exif_rotated_photo_is_made_upright(analyzer: FaceAnalyzer, obama: Image.Image) -> None:
    upright_box = analyzer.detect(np.asarray(obama))[0].box
    sideways = obama.transpose(Image.Transpose.ROTATE_90)  # stored turned 90° counter-clockwise
    exif = piexif.dump({"0th": {piexif.ImageIFD.Orientation: 6}})  # 6: display turned 90° clockwise
    decoded = decode_image(_encode(sideways, "JPEG", exif=exif, quality=95), MAX_PIXELS)
    assert decoded.pixels.shape[:2] == (obama.height, obama.width)
    faces = analyzer.detect(decoded.pixels)
    assert len(faces) == 1
    assert np.allclose(faces[0].box, upright_box, atol=0.06 * upright_box[2])
    eyes_y, mouth_y = faces[0].landmarks[:2, 1].mean(), faces[0].landmarks[3:, 1].mean()
    assert eyes_y < mouth_y, "face is upright: eyes above mouth"


def test_animated_gif_gives_first_frame(analyzer: FaceAnalyzer, obama: Image.Image) -> None:
    blanks = [Image.new("RGB", obama.size, (30 * i, 30, 30)) for i in (1, 2)]
    buf = io.BytesIO()
    obama.save(buf, format="GIF", save_all=True, append_images=blanks, duration=100, loop=0)
    assert Image.open(io.BytesIO(buf.getvalue())).n_frames == 3
    _one_face(analyzer, buf.getvalue())


@pytest.mark.skipif(not HEIF_SUPPORTED, reason="pillow-heif not installed")
def test_heic(analyzer: FaceAnalyzer, obama: Image.Image) -> None:
    data = _encode(obama, "HEIF", quality=90)
    assert decode_image(data, MAX_PIXELS).meta.format in ("HEIF", "HEIC")
    _one_face(analyzer, data)


def test_exif_time_gps_and_camera_are_read(obama: Image.Image) -> None:
    exif = piexif.dump(
        {
            "0th": {piexif.ImageIFD.Make: b"Reolink", piexif.ImageIFD.Model: b"RLC-810A"},
            "Exif": {piexif.ExifIFD.DateTimeOriginal: b"2024:05:01 07:30:15"},
            "GPS": {
                piexif.GPSIFD.GPSLatitudeRef: b"S",
                piexif.GPSIFD.GPSLatitude: ((33, 1), (51, 1), (3600, 100)),
                piexif.GPSIFD.GPSLongitudeRef: b"E",
                piexif.GPSIFD.GPSLongitude: ((151, 1), (12, 1), (3000, 100)),
            },
        }
    )
    meta = decode_image(_encode(obama, "JPEG", exif=exif), MAX_PIXELS).meta
    assert meta.taken_at == datetime(2024, 5, 1, 7, 30, 15)
    assert meta.gps_lat == pytest.approx(-(33 + 51 / 60 + 36 / 3600), abs=1e-6)
    assert meta.gps_lon == pytest.approx(151 + 12 / 60 + 30 / 3600, abs=1e-6)
    assert (meta.make, meta.model) == ("Reolink", "RLC-810A")


def test_missing_or_broken_exif_gives_none(obama: Image.Image) -> None:
    exif = piexif.dump({"Exif": {piexif.ExifIFD.DateTimeOriginal: b"not a date"}})
    meta = decode_image(_encode(obama, "JPEG", exif=exif), MAX_PIXELS).meta
    assert meta.taken_at is None and meta.gps_lat is None and meta.make is None


# --- broken and hostile -------------------------------------------------------------------


def test_zero_bytes() -> None:
    with pytest.raises(ImageUnreadable, match="empty"):
        decode_image(b"", MAX_PIXELS)


def test_truncated_jpeg_is_an_error_not_a_grey_image(obama: Image.Image) -> None:
    data = _encode(obama, "JPEG", quality=90)
    with pytest.raises(ImageUnreadable, match="truncated"):
        decode_image(data[: len(data) // 2], MAX_PIXELS)


def test_text_named_jpg() -> None:
    with pytest.raises(ImageUnreadable, match="not an image"):
        decode_image(b"hello, I am not a picture\n" * 10, MAX_PIXELS)


def test_random_bytes() -> None:
    rng = np.random.default_rng(1)
    with pytest.raises(ImageUnreadable):
        decode_image(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(), MAX_PIXELS)


def test_decompression_bomb_is_refused_before_decoding() -> None:
    bomb = _encode(Image.new("L", (12000, 12000), 0), "PNG")
    assert len(bomb) < 1_000_000, "tiny file, huge image"
    with pytest.raises(ImageTooLarge, match="MP"):
        decode_image(bomb, MAX_PIXELS)


def test_file_over_the_byte_limit() -> None:
    with pytest.raises(ImageTooLarge, match="MB"):
        decode_image(b"\xff" * 2_000_001, MAX_PIXELS, max_bytes=2_000_000)


# --- hostile metadata and fuzzed bytes: one file's error, never an exception out of decode ------


def _exif(entries: list[tuple[int, int, int, bytes]]) -> bytes:
    """A little-endian EXIF block with one IFD of raw ``(tag, type, count, value)`` entries,
    written by hand so a tag can carry a type no writer would give it."""
    count = len(entries)
    ifd, extra = struct.pack("<H", count), b""
    data_at = 8 + 2 + 12 * count + 4
    for tag, kind, n, value in sorted(entries):
        if len(value) <= 4:
            ifd += struct.pack("<HHI", tag, kind, n) + value.ljust(4, b"\0")
        else:
            ifd += struct.pack("<HHII", tag, kind, n, data_at + len(extra))
            extra += value
    return b"Exif\x00\x00II*\x00" + struct.pack("<I", 8) + ifd + b"\0\0\0\0" + extra


ROTATE_270 = (0x0112, 3, 1, struct.pack("<H", 6))
"""Orientation 6: the camera was turned; the upright image is the stored one turned 90° clockwise."""


@pytest.mark.parametrize("odd", [
    (0x011A, 2, 2, b"7\x00"),  # XResolution as text: TypeError "bad operand type for abs(): 'str'"
    (0x0213, 10, 3, bytes(range(24))),  # YCbCrPositioning as three signed rationals: struct.error
])
def test_an_odd_exif_tag_beside_the_orientation_keeps_the_picture(obama: Image.Image,
                                                                   odd: tuple[int, int, int, bytes]) -> None:
    """ImageOps.exif_transpose rewrote the EXIF block and raised on such a tag, stopping the run."""
    data = _encode(obama, "JPEG", exif=_exif([ROTATE_270, odd]))
    decoded = decode_image(data, MAX_PIXELS)
    assert decoded.pixels.shape[:2] == (obama.width, obama.height), "still made upright"


@pytest.mark.skipif(not HEIF_SUPPORTED, reason="pillow-heif not installed")
def test_heif_past_libheifs_size_limit_is_an_error() -> None:
    """A header claiming 128x16777216 made libheif raise RuntimeError ("Security limit exceeded")."""
    data = bytearray(_encode(Image.new("RGB", (32, 24), (90, 80, 70)), "HEIF", quality=50))
    at = data.find(b"ispe")
    data[at + 8 : at + 16] = struct.pack(">II", 128, 1 << 24)
    with pytest.raises(ImageUnreadable, match="HEIF"):
        decode_image(bytes(data), MAX_PIXELS)


def test_decode_fuzz_raises_nothing_but_image_unreadable() -> None:
    """Seeded fuzz, a few thousand cases in about two seconds: EXIF blocks of random tags, types
    and values beside a random orientation, and random byte edits of small files of every
    format. Before: TypeError, struct.error, AttributeError, ValueError and RuntimeError escaped."""
    rng = random.Random(20)
    small = Image.fromarray(np.random.default_rng(20).integers(0, 256, (12, 16, 3), dtype=np.uint8))
    sizes = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8}
    tags = [0x010F, 0x0110, 0x011A, 0x0128, 0x0131, 0x0132, 0x0213, 0x8769, 0x8825, 0x9286]
    cases: list[bytes] = []
    for _ in range(1500):
        kind = rng.choice(list(sizes))
        odd = (rng.choice([*tags, rng.randrange(1, 65535)]), kind, (n := rng.choice([0, 1, 2, 3, 20])),
               rng.randbytes(sizes[kind] * n))
        turn = (0x0112, 3, 1, struct.pack("<H", rng.randrange(0, 10)))
        cases.append(_encode(small, rng.choice(["JPEG", "PNG", "WEBP"]), exif=_exif([turn, odd])))
    seeds = [_encode(small, fmt, exif=_exif([ROTATE_270])) for fmt in ("JPEG", "PNG", "WEBP", "TIFF")]
    seeds += [_encode(small, "GIF")] + ([_encode(small, "HEIF", quality=50)] if HEIF_SUPPORTED else [])
    for _ in range(2500):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data))
            edit = rng.random()
            if edit < 0.7:
                data[at] = rng.randrange(256)
            elif edit < 0.85:
                data.insert(at, rng.randrange(256))
            else:
                del data[at]
        cases.append(bytes(data))
    escaped: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns about every corrupt EXIF block
        for data in cases:
            try:
                decoded = decode_image(data, MAX_PIXELS)
            except ImageUnreadable:
                continue
            except Exception as exc:  # noqa: BLE001 - what this test looks for
                escaped.append(f"{type(exc).__name__}: {exc}")
                continue
            assert decoded.pixels.dtype == np.uint8 and decoded.pixels.ndim == 3
    assert not escaped, f"{len(escaped)} of {len(cases)} escaped, e.g. {escaped[:3]}"

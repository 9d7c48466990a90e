"""Settings: validated, bounded, typo-proof; the public surface stays small."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

import facelake
from facelake.config import load_settings
from facelake.errors import ConfigError


def test_toml_env_and_overrides_in_priority_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "facelake.toml"
    cfg.write_text('det_threshold = 0.7\nmax_file_mb = 5\ndb = "from-file.duckdb"\n')
    monkeypatch.setenv("FACELAKE_MAX_FILE_MB", "7")
    s = load_settings(cfg, db=tmp_path / "cli.duckdb")
    assert (s.det_threshold, s.max_file_mb, s.db) == (0.7, 7.0, tmp_path / "cli.duckdb")


def test_unknown_key_is_rejected_not_ignored(tmp_path: Path) -> None:
    cfg = tmp_path / "facelake.toml"
    cfg.write_text("det_treshold = 0.7\n")
    with pytest.raises(ConfigError, match="det_treshold"):
        load_settings(cfg)


def test_out_of_bounds_value_names_the_field_and_the_bound(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="det_threshold"):
        load_settings(None, det_threshold=1.5)


def test_bad_toml_is_a_config_error(tmp_path: Path) -> None:
    cfg = tmp_path / "facelake.toml"
    cfg.write_text("this is = = not toml")
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(cfg)


def test_exported_members() -> None:
    """The public API is exactly what __all__ lists, and all of it exists."""
    public = {name for name in dir(facelake) if not name.startswith("_")}
    # Submodules become attributes once anything imports them; they are not the public API.
    modules = {name for name in public if isinstance(getattr(facelake, name), types.ModuleType)} | {"annotations"}
    assert set(facelake.__all__) == public - modules
    for name in facelake.__all__:
        assert getattr(facelake, name) is not None


def test_every_error_is_a_facelake_error() -> None:
    for name in ("ConfigError", "ImageTooLarge", "ImageUnreadable", "ModelLoadError", "NoFaceFound",
                 "ReadOnlyViolation", "StoreError"):
        assert issubclass(getattr(facelake, name), facelake.FacelakeError)


def test_a_bad_setting_is_explained_with_its_source_not_as_pydantic_text(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bad settings printed pydantic's raw text: error codes, input types and a pydantic.dev URL."""
    cfg = tmp_path / "facelake.toml"
    cfg.write_text("det_treshold = 0.7\n")
    monkeypatch.setenv("FACELAKE_MAX_PIXELS", "5")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    text = str(err.value)
    assert "max_pixels (from FACELAKE_MAX_PIXELS): must be greater than or equal to 1000000, got '5'" in text
    assert f"det_treshold (from {cfg}) is not a setting; did you mean det_threshold?" in text
    assert "pydantic" not in text and "type=" not in text
    monkeypatch.delenv("FACELAKE_MAX_PIXELS")
    with pytest.raises(ConfigError) as err:
        load_settings(None, db="postgresql://u:s3cret@h/db", det_threshold=2)
    assert "det_threshold (from option)" in str(err.value) and "s3cret" not in str(err.value)

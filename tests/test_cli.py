"""The command line tells the truth: data and messages are printed as they are, never as markup."""

from __future__ import annotations

import shutil
from pathlib import Path

from facelake.cli import app
from facelake.store.base import Target

from .test_ingest import cli, runner


def test_names_and_notes_are_printed_as_written_never_as_markup(db: Target, samples: Path) -> None:
    """`people add "Joe [/]"` wrote the person and then crashed (rich read "[/]" as a closing
    tag), and `people list` crashed from then on; a note "[red]yes[/red] :x:" came out red, as an emoji."""
    name, note = "Joe [/]", "[red]yes[/red] :x:"
    code, output = cli(db, "people", "add", name, str(samples / "obama.jpg"), "--consent", note)
    assert code == 0 and f"enrolled {name} (person" in output, output
    result = runner.invoke(app, ["--db", str(db), "people", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and name in result.output and note in result.output, result.output


def test_a_failed_file_is_named_as_it_is(db: Target, tmp_path: Path, cams: Path, samples: Path) -> None:
    """The summary's failed lines were printed as markup: a "[red]" in a file name vanished."""
    (cams / "garden" / "x [red]y[b] :x:.jpg").write_bytes(b"not a photo")
    shutil.copy(samples / "obama.jpg", cams / "garden" / "[b]bold.jpg")
    code, output = cli(db, "ingest", str(cams), "--workers", "1", "-v")
    assert code == 0, output
    assert "x [red]y[b] :x:.jpg: not an image" in output, output
    assert "[b]bold.jpg" in output

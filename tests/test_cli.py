"""The command line tells the truth: data and messages are printed as they are, never as markup."""

from __future__ import annotations

import shutil
from pathlib import Path

from facelake.cli import app
from facelake.store.base import Target

from .dbs import rows
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
    code, output = cli(db, "ingest", str(cams), "--workers", "1")
    assert code == 0, output
    assert "x [red]y[b] :x:.jpg: not an image" in output, output
    code, output = cli(db, "ingest", str(cams), "--workers", "1", "-v")
    assert "[b]bold.jpg" in output


def test_verbose_ingest_says_each_thing_once_and_truly(db: Target, cams: Path) -> None:
    """`ingest -v` printed `skipped … faces=0` for images whose faces are stored, and each failed
    image twice (its line, then again under the summary)."""
    (cams / "garden" / "broken.jpg").write_bytes(b"not a photo")
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0
    (cams / "garden" / "late.jpg").write_bytes(b"not a photo either")
    code, output = cli(db, "ingest", str(cams), "--workers", "1", "-v")
    assert code == 0, output
    lines = output.splitlines()
    skipped = [line for line in lines if line.startswith("skipped ")]
    assert len(skipped) == 3 and not [line for line in skipped if "faces=" in line], output
    assert len([line for line in lines if "late.jpg" in line]) == 1, output
    # A newline in a file's name is written as an escape: the image's line stays one line.
    (cams / "garden" / "two\nlines.jpg").write_bytes(b"not a photo, and oddly named")
    code, output = cli(db, "ingest", str(cams), "--workers", "1", "-v")
    assert code == 0 and "garden/two\\nlines.jpg error:" in output, output
    code, output = cli(db, "ingest", str(cams), "--workers", "1")
    assert "garden/two\\nlines.jpg:" in output and "\nlines.jpg" not in output, output


def test_the_exit_codes_are_the_documented_table() -> None:
    import re

    from facelake.cli import EXIT_CODES

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    table = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    documented = {int(code): names for code, names in re.findall(r"^\| (\d) \| (.*) \|$", table, re.MULTILINE)}
    assert sorted(documented) == list(range(9))
    for cls, code in EXIT_CODES.items():
        assert f"`{cls.__name__}`" in documented[code], (cls, code)


def test_usage_mistakes_exit_2_and_change_nothing(db: Target, tmp_path: Path, cams: Path, samples: Path) -> None:
    """`reembed --model bogus` exited 1 (the code of bugs), a missing photo 1 where an unreadable
    one gives 6, and `clusters merge 3 3` succeeded and was audited."""
    code, output = cli(db, "reembed", "--model", "bogus")
    assert code == 2 and "--model must be one of" in output, output
    code, output = cli(db, "people", "add", "Ann", str(tmp_path / "nope.jpg"), "--consent", "asked")
    assert code == 2 and "no such file" in output, output
    (tmp_path / "bad.jpg").write_text("not a photo")
    code, output = cli(db, "people", "add", "Ann", str(tmp_path / "bad.jpg"), "--consent", "asked")
    assert code == 6, output
    for name in ("obama2.jpg", "obama3.jpg"):
        shutil.copy(samples / name, cams / "garden" / name)
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0
    assert cli(db, "cluster")[0] == 0
    cluster = rows(db, "SELECT min(cluster_id) FROM sightings")[0][0]
    assert cluster is not None
    audited = rows(db, "SELECT count(*) FROM audit")
    code, output = cli(db, "clusters", "merge", str(cluster), str(cluster))
    assert code == 2 and "itself" in output, output
    assert rows(db, "SELECT count(*) FROM audit") == audited


def test_the_readme_jsonl_example_has_the_default_embedding_length() -> None:
    """The README's `embed --jsonl` example said 128 floats where the default embedder gives 320."""
    import re

    from facelake.config import Settings
    from facelake.vision.models import EMBEDDER_MODELS, EMBEDDING_DIMS

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    example = re.search(r'"embedding": \[(\d+) floats\]', readme)
    assert example is not None and int(example.group(1)) == EMBEDDING_DIMS[EMBEDDER_MODELS[Settings().embedder]]


def test_people_per_day_counts_what_the_cameras_saw_not_the_enrollment_photo(db: Target, cams: Path,
                                                                              samples: Path) -> None:
    """people_per_day counted the enrollment photo as a sighting, where the HTML report does not."""
    import json

    assert cli(db, "people", "add", "Barack", str(samples / "obama3.jpg"), "--consent", "asked")[0] == 0
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0
    code, output = cli(db, "sql", "--report", "people_per_day", "--json")
    assert code == 0, output
    assert sum(r["sightings"] for r in json.loads(output)) == 2, "a.jpg and c.jpg; not the enrollment photo"
    assert {r["person"] for r in json.loads(output)} == {"Barack"}, "at home the report names people, not ids"


def test_tables_wrap_long_values_instead_of_cutting_them(db: Target, cams: Path) -> None:
    """At 80 columns the demo's tables cut file names to "…", and had no titles."""
    long_name = "a-very-long-camera-file-name-" + "x" * 90 + ".jpg"
    (cams / "garden" / "c.jpg").rename(cams / "garden" / long_name)
    assert cli(db, "ingest", str(cams), "--workers", "1")[0] == 0
    code, output = cli(db, "sql", "SELECT regexp_replace(uri, '^.*/', '') AS file, camera FROM images ORDER BY 1",
                       "--title", "stored files")
    assert code == 0 and "…" not in output and output.lstrip().startswith("stored files"), output
    cells = "".join(line.split("│")[1].strip() for line in output.splitlines() if line.startswith("│"))
    assert long_name in cells, output


def test_a_wrong_file_or_folder_is_named_for_what_it_is(tmp_path: Path, samples: Path) -> None:
    """A photo given as --db said another process held it; a report into a missing folder was a
    traceback (exit 1, "a bug") after the work; a clip given to `people add` said "None"; `embed` of
    a missing photo exited 0 (the table says 2, as ingest does)."""
    photo = tmp_path / "photo.jpg"
    shutil.copy(samples / "obama.jpg", photo)
    result = runner.invoke(app, ["--db", str(photo), "stats"], catch_exceptions=False)
    assert result.exit_code == 4 and "is not a DuckDB database" in result.output, result.output
    assert "another process" not in result.output and photo.read_bytes() == (samples / "obama.jpg").read_bytes()
    db = tmp_path / "f.duckdb"
    code, output = cli(db, "report", "--out", str(tmp_path / "missing" / "r.html"))
    assert code == 2 and "does not exist" in output and not (tmp_path / "missing").exists(), output
    code, output = cli(db, "report", "--out", str(tmp_path))
    assert code == 2 and "is a folder; give a file name" in output, output
    assert cli(db, "tokens", "create", "--scope", "read", "--name", "r")[0] == 0  # the database, to report on
    code, output = cli(db, "report", "--out", "/proc/report.html")  # a folder nobody can write into, root included
    assert code == 2 and "cannot write the report there" in output, output
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    for args in (("people", "add", "Ann", str(clip), "--consent", "asked"), ("search", str(clip))):
        code, output = cli(db, *args)
        assert code == 6 and "this is a video; give a photo" in output and "None" not in output, output
    result = runner.invoke(app, ["embed", "--jsonl", str(photo), str(tmp_path / "nope.jpg")], catch_exceptions=False)
    assert result.exit_code == 2 and "nope.jpg: no such file or folder" in result.output, result.output


def test_version_is_printed_without_a_database(tmp_path: Path) -> None:
    from facelake import __version__

    result = runner.invoke(app, ["--db", str(tmp_path / "none.duckdb"), "--version"], catch_exceptions=False)
    assert result.exit_code == 0 and result.output.strip() == f"facelake {__version__}", result.output
    assert not (tmp_path / "none.duckdb").exists()

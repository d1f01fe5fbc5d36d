"""The pure parts of a backup: the manifest's checks and the registry file's verbatim bytes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assignment.registry_topic import RawRegistryMessage
from xpstream.backup.manifest import (
    FORMAT,
    BackupError,
    Manifest,
    file_entry,
    read_manifest,
    verify_backup,
    write_manifest,
)
from xpstream.backup.registry_copy import read_records_file, write_records_file


def make_backup(root: Path) -> Manifest:
    (root / "warehouse").mkdir(parents=True)
    (root / "warehouse" / "events.arrow").write_bytes(b"arrow bytes" * 10)
    manifest = Manifest(
        created_at="2026-12-05T07:00:00+00:00",
        warehouse_kind="chdb",
        migrations=[{"version": 1, "name": "event_tables", "checksum": "abc"}],
        tables={"xp.events": 3},
        derived_tables=[],
        registry_records=None,
        lake=False,
        files=[file_entry(root, root / "warehouse" / "events.arrow")],
    )
    write_manifest(root, manifest)
    return manifest


def test_a_written_manifest_verifies_and_reads_back(tmp_path: Path) -> None:
    manifest = make_backup(tmp_path)
    assert verify_backup(tmp_path) == manifest


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("not json", "unreadable manifest"),
        ('{"format": "other/9"}', "is not 'xpstream-backup/1'"),
        (f'{{"format": "{FORMAT}"}}', "malformed manifest"),
        ("[]", "format 'list'"),
    ],
)
def test_a_malformed_manifest_is_refused(tmp_path: Path, document: str, message: str) -> None:
    (tmp_path / "manifest.json").write_text(document)
    with pytest.raises(BackupError, match=message):
        read_manifest(tmp_path)


def test_a_table_without_its_file_is_refused(tmp_path: Path) -> None:
    make_backup(tmp_path)
    document = json.loads((tmp_path / "manifest.json").read_text())
    document["tables"]["xp.exposures"] = 5
    (tmp_path / "manifest.json").write_text(json.dumps(document))
    with pytest.raises(BackupError, match=r"table xp\.exposures has no file"):
        verify_backup(tmp_path)


@pytest.mark.parametrize("path", ["/etc/passwd", "../outside", "warehouse/../../x", ""])
def test_paths_outside_the_backup_are_refused(tmp_path: Path, path: str) -> None:
    make_backup(tmp_path)
    document = json.loads((tmp_path / "manifest.json").read_text())
    document["files"][0]["path"] = path
    (tmp_path / "manifest.json").write_text(json.dumps(document))
    with pytest.raises(BackupError):
        verify_backup(tmp_path)


def test_registry_records_keep_every_byte(tmp_path: Path) -> None:
    messages = [
        RawRegistryMessage(
            0, 7, 1_764_900_000_000, b"experiment:x", b'{"k": "\xff"}', (("xp-signature", b"\x00s"),)
        ),
        RawRegistryMessage(2, 0, None, None, None, ()),
    ]
    write_records_file(messages, tmp_path / "records.jsonl")
    assert read_records_file(tmp_path / "records.jsonl") == messages


@pytest.mark.parametrize(
    "line",
    [
        '{"partition": 0, "offset": 0, "timestamp_ms": null, "key": "not base64!", "value": null, '
        '"headers": []}',
        '{"partition": 0}',
        "{not json",
    ],
)
def test_a_malformed_registry_line_is_refused(tmp_path: Path, line: str) -> None:
    (tmp_path / "records.jsonl").write_text(line + "\n")
    with pytest.raises(BackupError, match=r"records\.jsonl line 1"):
        read_records_file(tmp_path / "records.jsonl")


def test_a_backup_into_a_non_empty_directory_is_refused(tmp_path: Path) -> None:
    from xpcore.config.jobs import LakeSettings
    from xpstream.backup import create_backup

    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "keep.txt").write_text("mine")
    settings = LakeSettings(home=tmp_path / "home", clickhouse_url=None)
    with pytest.raises(BackupError, match="not empty"):
        create_backup(settings, tmp_path / "dest")
    assert (tmp_path / "dest" / "keep.txt").read_text() == "mine"
    assert not (tmp_path / "home").exists()


def test_an_unknown_part_to_skip_is_refused_in_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "xpstream.cli", "restore", str(tmp_path), "--skip", "kafka"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr == "error: --skip takes warehouse, registry or lake, got kafka\n"

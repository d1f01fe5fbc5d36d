"""docs/configuration.md documents every setting, generated from the settings classes."""

from __future__ import annotations

from pathlib import Path

from xpcore.config import CoreSettings
from xpstream.settings_doc import render_configuration_doc

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_configuration_doc_is_up_to_date() -> None:
    assert DOC.read_text() == render_configuration_doc(), (
        "docs/configuration.md is stale: run `python -m xpstream.settings_doc > docs/configuration.md`"
    )


def test_every_setting_has_a_description() -> None:
    missing = [name for name, field in CoreSettings.model_fields.items() if not field.description]
    assert not missing


def test_secrets_are_not_echoed(monkeypatch) -> None:
    monkeypatch.setenv("XP_CLICKHOUSE_PASSWORD", "hunter2")
    settings = CoreSettings()
    assert "hunter2" not in repr(settings)
    assert settings.clickhouse_password.get_secret_value() == "hunter2"

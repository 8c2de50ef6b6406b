"""The input topic is the record: a check says what a setting that deletes events costs, and
names the fix (service/ingest/input_topic.py, `motcua keep-events`)."""

from __future__ import annotations

from typing import Any

from service.ingest.input_topic import InputTopicCheck
from service.settings import Settings

settings = Settings(broker="kafka://10.0.0.5:9092", topic="dossier-events")


def test_the_input_topic_warnings_name_what_is_lost_and_the_fix() -> None:
    checked = InputTopicCheck(
        settings.topic, 4, 8, {"retention.ms": "604800000", "retention.bytes": "1073741824"}
    )
    assert checked.finite == {"retention.ms": "604800000", "retention.bytes": "1073741824"}
    partitions, ms, size = checked.warnings(settings)
    assert partitions == (
        f"topic {settings.topic} has 4 partitions, fewer than MOTCUA_PARTITIONS=8: the workers"
        " can spread over 4 at most"
    )
    fix = f"MOTCUA_BROKER={settings.bootstrap} MOTCUA_TOPIC={settings.topic} motcua keep-events"
    assert ms.startswith(f"topic {settings.topic} has retention.ms=604800000: events older")
    assert size.startswith(f"topic {settings.topic} has retention.bytes=1073741824: events")
    assert ms.endswith(f"keep them forever with `{fix}`") and size.endswith(f"`{fix}`")
    forever = InputTopicCheck(settings.topic, 8, 8, {"retention.ms": "-1", "retention.bytes": "-1"})
    assert forever.finite == {} and forever.warnings(settings) == []


def test_keep_events_says_in_one_line_when_the_broker_does_not_answer(
    capsys: Any, monkeypatch: Any
) -> None:
    from service.cli import main

    monkeypatch.setenv("MOTCUA_BROKER", "127.0.0.1:1")
    assert main(["keep-events"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("motcua keep-events: cannot reach the broker at 127.0.0.1:1")
    assert "\n" not in err

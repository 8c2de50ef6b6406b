"""deploy/gateway/sources.toml, the example operators copy: it loads with the gateway's own
loader as it stands and with its commented sender tables switched on, and it agrees with
the keys docs/senders.md and docs/gateway.md document."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from service.ingest.gateway.credentials import Network, password_matches
from service.ingest.gateway.sources import (
    Answer,
    Auth,
    SourcesFile,
    SourcesFileError,
    parse_sources,
)
from service.ingest.national_sync import Meaning, SyncProfile

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "gateway" / "sources.toml"
SENDERS_MD = ROOT / "docs" / "senders.md"
GATEWAY_MD = ROOT / "docs" / "gateway.md"
# The example's secrets are of these public strings (its header says so).
DEMO_PATH_SECRET = "compose-demo-path-secret"
DEMO_PASSWORD = "compose-demo-password"

# A commented table header or `key = value` line; prose comments are left alone.
_COMMENTED_SETTING = re.compile(r"^# (\[sources\.[A-Za-z0-9_.-]+\]|[a-z0-9_]+ = .*)$")
_KEY_LINE = re.compile(r"^\s*#?\s*([a-z0-9_]+)\s*=")


def switched_on(text: str) -> str:
    """The example with every commented table and setting uncommented."""
    lines = []
    for line in text.splitlines():
        match = _COMMENTED_SETTING.match(line)
        lines.append(match.group(1) if match else line)
    return "\n".join(lines) + "\n"


def toml_block_keys(markdown: str) -> set[str]:
    """The keys set (or shown commented) in the markdown's ```toml blocks."""
    keys: set[str] = set()
    for block in re.findall(r"```toml\n(.*?)```", markdown, re.DOTALL):
        for line in block.splitlines():
            match = _KEY_LINE.match(line)
            if match:
                keys.add(match.group(1))
    return keys


def gateway_md_keys() -> set[str]:
    """The first column of gateway.md's source-profile key table."""
    text = GATEWAY_MD.read_text(encoding="utf-8")
    section = text.split("### Source profiles", 1)[1].split("\n### ", 1)[0]
    keys: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            keys.update(re.findall(r"`([a-z0-9_]+)`", line.split("|")[1]))
    return keys


def keys_in(text: str) -> set[str]:
    """Every key a table of `text` sets."""
    sources = tomllib.loads(text)["sources"]
    return {key for table in sources.values() for key in table}


def test_the_example_loads_as_it_stands() -> None:
    sources = SourcesFile(EXAMPLE)
    sources.load()
    assert set(sources.content) == {"compose-demo"}
    assert sources.profile("compose-demo").auth is Auth.BEARER


def test_the_commented_sender_tables_load_when_switched_on(tmp_path: Path) -> None:
    text = switched_on(EXAMPLE.read_text(encoding="utf-8"))
    path = tmp_path / "sources.toml"
    path.write_text(text, encoding="utf-8")
    sources = SourcesFile(path)
    sources.load()  # the real loader, as the gateway starts with it
    assert set(sources.content) == {"compose-demo", "dvc-dotnet", "opencps-bg", "opencps-province"}

    dotnet = sources.profile("dvc-dotnet")
    assert dotnet.auth is Auth.PATH_SECRET and dotnet.answer is Answer.PORTAL
    assert sources.by_path_secret(DEMO_PATH_SECRET) == "dvc-dotnet"
    assert dotnet.networks and all(isinstance(n, Network) for n in dotnet.networks)
    assert dotnet.progress_path == "/api/DongBoTienTrinh"
    assert dotnet.upstream == "https://dichvucong.example.gov.vn"
    assert dotnet.sync.finished_without_date is Meaning.PAUSED

    opencps = sources.profile("opencps-bg")
    assert opencps.auth is Auth.OPENCPS_LOGIN
    assert sources.by_login("opencps-bacgiang") == "opencps-bg"
    assert opencps.login_password is not None
    assert password_matches(DEMO_PASSWORD, opencps.login_password)
    assert opencps.dstcode_matches("compose-demo-dstcode")
    assert opencps.session_minutes == 60
    assert opencps.upstream == "https://adapter.example.gov.vn"
    assert opencps.sync == SyncProfile("direct", True, {8: Meaning.REJECTED}, None)
    province = sources.profile("opencps-province")
    assert province.auth is Auth.OPENCPS_SESSION
    assert province.dstcode_matches("compose-demo-dstcode")
    assert not province.dstcode_matches("compose-demo-dstcodE")


def test_every_key_the_senders_guide_shows_is_in_the_example_or_refused_clearly() -> None:
    documented = toml_block_keys(SENDERS_MD.read_text(encoding="utf-8"))
    assert {"path_secret_sha256", "networks", "upstream", "login_user", "session_minutes"} <= (
        documented
    )
    example = keys_in(switched_on(EXAMPLE.read_text(encoding="utf-8")))
    for key in sorted(documented - example):
        with pytest.raises(SourcesFileError, match=rf"unknown key '{key}'"):
            parse_sources(f'[sources.s]\n{key} = "x"\n')
    # The new senders' keys are all shown in the example, not only refused.
    senders_keys = {"path_secret_sha256", "progress_path", "networks", "upstream"}
    senders_keys |= {"upstream_timeout", "login_user", "login_password", "session_minutes"}
    assert senders_keys <= example


def test_the_example_uses_only_keys_the_key_table_documents() -> None:
    example = keys_in(switched_on(EXAMPLE.read_text(encoding="utf-8")))
    table = gateway_md_keys()
    assert example <= table, example - table
    # Every key the guide's ```toml blocks show is in the key table too.
    assert toml_block_keys(SENDERS_MD.read_text(encoding="utf-8")) <= table


def test_a_misspelt_key_is_refused_naming_the_key_and_the_table() -> None:
    with pytest.raises(SourcesFileError) as refused:
        parse_sources('[sources.dvc-dotnet]\nauth = "path_secret"\npath_secret = "abc"\n', "f")
    assert str(refused.value) == "f [sources.dvc-dotnet]: unknown key 'path_secret'"

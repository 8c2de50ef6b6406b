"""OpenCPS's sessions are signed: any gateway with the key and the sources file accepts one,
and nothing else does (service/ingest/gateway/sessions.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from service.ingest.gateway.server import GatewayStartError, build_gateway
from service.ingest.gateway.sessions import SessionBook, read_session_key
from service.settings import Settings

KEY = bytes(range(32))
LINES = {"opencps-bg": "scrypt$16384$8$1$c2FsdA$aGFzaA", "opencps-hn": "scrypt$16384$8$1$eA$eQ"}


def line(source: str) -> str | None:
    return LINES.get(source)


def book(now: float = 1_800_000_000.0, key: bytes = KEY) -> SessionBook:
    return SessionBook(key, clock=lambda: now)


def test_a_signed_session_names_its_source_until_it_expires() -> None:
    session = book().issue("opencps-bg", 60, LINES["opencps-bg"])
    assert session.startswith("m1.") and len(session) <= 255
    assert book().source_of(session, line) == "opencps-bg"
    assert book(now=1_800_000_000.0 + 3599).source_of(session, line) == "opencps-bg"
    assert book(now=1_800_000_000.0 + 3600).source_of(session, line) is None
    assert book(key=bytes(32)).source_of(session, line) is None
    # Two sessions of one source differ: each login gets its own.
    assert book().issue("opencps-bg", 60, LINES["opencps-bg"]) != session


def test_a_session_cannot_be_moved_to_another_source_or_stretched() -> None:
    session = book().issue("opencps-bg", 60, LINES["opencps-bg"])
    _, source, expires, nonce, mac = session.split(".")
    other = "b3BlbmNwcy1obg"  # "opencps-hn", base64url
    assert book().source_of(f"m1.{other}.{expires}.{nonce}.{mac}", line) is None
    later = str(int(expires) + 86_400)
    assert book().source_of(f"m1.{source}.{later}.{nonce}.{mac}", line) is None


@given(st.text(max_size=120))
@example("m1.b3BlbmNwcy1iZw.\u00b2.nonce.mac")  # a digit to str.isdigit, not to int
@example("m1.\udcff.1.n.m")
def test_anything_else_is_no_session(text: str) -> None:
    found = book().source_of(text, line)
    assert found is None


@given(st.integers(0, 200), st.characters(codec="ascii"))
def test_a_session_with_one_character_changed_is_refused(at: int, char: str) -> None:
    session = book().issue("opencps-hn", 60, LINES["opencps-hn"])
    at %= len(session)
    changed = session[:at] + char + session[at + 1 :]
    expected = "opencps-hn" if changed == session else None
    assert book().source_of(changed, line) == expected


def test_a_signed_session_with_a_mac_not_ascii_is_no_session() -> None:
    # aiohttp or a JSON body may carry any text; compare_digest refuses non-ASCII str.
    session = book().issue("opencps-bg", 60, LINES["opencps-bg"])
    signed, _, mac = session.rpartition(".")
    for other in ("\u00e9" * len(mac), mac[:-1] + "\u00e9", mac + "\udcff"):
        assert book().source_of(f"{signed}.{other}", line) is None
    assert book().source_of(f"{signed[:-1]}\u00e9.{mac}", line) is None


def test_a_relayed_session_is_kept_in_this_process_only() -> None:
    first = book()
    first.remember("the-portal's-own-session", "opencps-bg", 60, LINES["opencps-bg"])
    assert first.source_of("the-portal's-own-session", line) == "opencps-bg"
    assert book().source_of("the-portal's-own-session", line) is None


def test_a_relayed_session_ends_with_its_source_s_password_line() -> None:
    first = book()
    first.remember("the-portal's-own-session", "opencps-bg", 60, LINES["opencps-bg"])
    # A new password (a new line), or the source taken out of the sources file.
    assert first.source_of("the-portal's-own-session", lambda _: LINES["opencps-hn"]) is None
    assert first.source_of("the-portal's-own-session", lambda _: None) is None
    assert first.source_of("the-portal's-own-session", line) == "opencps-bg"


def test_the_key_file_is_read_and_a_short_one_is_refused_in_one_line(tmp_path: Path) -> None:
    good = tmp_path / "session.key"
    good.write_text("c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldC0K\n", encoding="ascii")
    assert read_session_key(str(good)) == b"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldC0K"
    short = tmp_path / "short.key"
    short.write_text("abc\n", encoding="ascii")
    with pytest.raises(ValueError, match=r"short\.key: 3 bytes; a key needs at least 32"):
        read_session_key(str(short))
    with pytest.raises(ValueError, match=r"missing\.key: No such file or directory"):
        read_session_key(str(tmp_path / "missing.key"))


def test_motcua_gateway_says_whose_sessions_it_accepts(tmp_path: Path) -> None:
    sources = tmp_path / "sources.toml"
    sources.write_text(
        '[sources.opencps-bg]\nauth = "opencps_login"\nlogin_user = "u"\n'
        f'login_password = "{LINES["opencps-bg"]}"\n',
        encoding="utf-8",
    )
    key = tmp_path / "session.key"
    key.write_bytes(KEY.hex().encode())
    alone = build_gateway(Settings(gateway_sources_file=sources))
    assert "OpenCPS sessions of this process only" in alone.access
    shared = build_gateway(Settings(gateway_sources_file=sources, gateway_session_key_file=key))
    assert "OpenCPS sessions signed with MOTCUA_GATEWAY_SESSION_KEY_FILE" in shared.access
    assert shared.gateway.sessions.key == KEY.hex().encode()
    key.write_text("short", encoding="ascii")
    with pytest.raises(GatewayStartError, match="MOTCUA_GATEWAY_SESSION_KEY_FILE"):
        build_gateway(Settings(gateway_sources_file=sources, gateway_session_key_file=key))

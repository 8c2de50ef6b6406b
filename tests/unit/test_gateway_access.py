"""The gateway's access rules and reference files: tokens, units, source profiles, procedures,
rate limits, start-up refusals."""

from __future__ import annotations

import math
import os
import unicodedata
from pathlib import Path

import pytest

from service.ingest.gateway.app import GATEWAY_KEY
from service.ingest.gateway.limits import RateLimiter
from service.ingest.gateway.procedures import ProceduresFile, ProceduresFileError, parse_procedures
from service.ingest.gateway.server import (
    GatewayStartError,
    build_gateway,
    is_loopback,
    run_gateway,
)
from service.ingest.gateway.sources import (
    Answer,
    SourceProfile,
    SourcesFile,
    SourcesFileError,
    parse_sources,
)
from service.ingest.gateway.tokens import TokenBook, TokenFileError, parse_tokens, token_hash
from service.ingest.gateway.units import UnitsFile, UnitsFileError, parse_units
from service.settings import Settings, SettingsError


def test_token_file_maps_hashes_to_system_names() -> None:
    text = f"# center systems\nopencps-bacgiang {token_hash('s3cret')}  # since 2026-11\n\n"
    assert parse_tokens(text) == {token_hash("s3cret"): "opencps-bacgiang"}


@pytest.mark.parametrize(
    "text",
    [
        "opencps s3cret",  # the token itself, not its hash
        f"two words {token_hash('x')}",
        f"anonymous {token_hash('x')}",
        f"a {token_hash('x')}\na {token_hash('y')}",
        f"a {token_hash('x')}\nb {token_hash('x')}",
        "# only comments",
    ],
)
def test_bad_token_files_are_refused(text: str) -> None:
    with pytest.raises(TokenFileError):
        parse_tokens(text)


def test_token_book_reloads_when_the_file_changes_and_keeps_the_last_good(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"alpha {token_hash('one')}\n")
    book = TokenBook(path)
    book.load()
    assert book.system_for("one") == "alpha"
    assert book.system_for("two") is None
    assert book.system_for("") is None
    path.write_text(f"beta {token_hash('two')}\n")
    os.utime(path, ns=(1, 2_000_000_000_000_000_000))
    assert book.system_for("two") == "beta"
    assert book.system_for("one") is None
    path.write_text("broken line\n")
    os.utime(path, ns=(1, 3_000_000_000_000_000_000))
    assert book.system_for("two") == "beta"
    assert book.last_error is not None


def test_units_file_matches_folded_names_and_reloads(tmp_path: Path) -> None:
    path = tmp_path / "units.csv"
    path.write_text('unit,agency\n000.00.07.H19,SXD\n"Sở  Tư pháp",STP\n')
    units = UnitsFile(path)
    units.load()
    assert len(units) == 2
    assert units.agency_for("000.00.07.H19", "anything") == "SXD"
    assert units.agency_for(None, "sở tư pháp") == "STP"
    assert units.agency_for("nope", None) is None
    path.write_text("unit,agency\n000.00.07.H19,SXD2\n")
    os.utime(path, ns=(1, 2_000_000_000_000_000_000))
    assert units.agency_for("000.00.07.H19", None) == "SXD2"
    assert units.agency_for(None, "Sở Tư pháp") is None


@pytest.mark.parametrize(
    "text", ["unit;agency\nA;B\n", "unit,agency\nA\n", "unit,agency\nA,B\nA,C\n"]
)
def test_bad_units_files_are_refused(text: str) -> None:
    with pytest.raises(UnitsFileError):
        parse_units(text)


def test_a_wrongly_typed_default_channel_is_named(tmp_path: Path) -> None:
    with pytest.raises(SourcesFileError, match=r"\[sources\.x\] default_channel: direct"):
        parse_sources("[sources.x]\ndefault_channel = ['direct']\n")


# A CSV field past the csv module's own limit: the parser raises csv.Error, not the file's error.
_HUGE_FIELD_UNITS = 'unit,agency\n"' + "x" * 200_000 + '",SXD\nSở Xây dựng,SXD\n'


def test_a_reference_file_that_turns_bad_in_any_way_keeps_the_last_good(tmp_path: Path) -> None:
    path = tmp_path / "units.csv"
    path.write_text("unit,agency\nSở Xây dựng,SXD\n", encoding="utf-8")
    units = UnitsFile(path)
    units.load()
    path.write_text(_HUGE_FIELD_UNITS, encoding="utf-8")
    os.utime(path, ns=(1, 2_000_000_000_000_000_000))
    assert units.agency_for(None, "Sở Xây dựng") == "SXD"
    assert units.last_error is not None and "field larger than field limit" in units.last_error
    sources_path = tmp_path / "sources.toml"
    sources_path.write_text("[sources.a]\nanswer = 'portal'\n")
    sources = SourcesFile(sources_path)
    sources.load()
    sources_path.write_text("[sources.a]\nanswer = 'portal'\ndefault_channel = ['direct']\n")
    assert sources.profile("a").answer is Answer.PORTAL
    assert sources.last_error is not None and "default_channel" in sources.last_error


def test_a_units_file_whose_departments_are_bad_stops_the_start_in_one_line(
    tmp_path: Path,
) -> None:
    """The agencies are fine, but one unit names two departments: the progress route would
    refuse every row as of an unknown department, so the start says it instead."""
    path = tmp_path / "units.csv"
    path.write_text(
        "unit,agency,department\nSở Xây dựng,SXD,\nPhòng Quản lý,SXD,SXD.QL\n"
        "Phòng Quản lý,SXD,SXD.KT\n",
        encoding="utf-8",
    )
    with pytest.raises(GatewayStartError, match=r"line 4: the department is listed twice"):
        build_gateway(Settings(units_file=path))
    path.write_text(
        "unit,agency,department\nSở Xây dựng,SXD,\nPhòng Quản lý,SXD,SXD.QL\n", encoding="utf-8"
    )
    built = build_gateway(Settings(units_file=path))
    departments = built.gateway.references.departments
    assert departments.last_error is None
    assert departments.content.by_name == {"phòng quản lý": ("SXD", "SXD.QL")}


def test_a_reference_file_any_parser_refuses_stops_the_start_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "units.csv"
    path.write_text(_HUGE_FIELD_UNITS, encoding="utf-8")
    with pytest.raises(GatewayStartError, match=r"cannot read the units file .*field limit"):
        build_gateway(Settings(units_file=path))
    monkeypatch.setenv("MOTCUA_UNITS_FILE", str(path))
    assert run_gateway() == 2
    err = capsys.readouterr().err
    assert err.startswith("motcua gateway: cannot read the units file") and err.count("\n") == 1


def test_no_units_file_knows_no_unit() -> None:
    units = UnitsFile(None)
    units.load()
    assert units.agency_for("000.00.07.H19", "Sở Xây dựng") is None


def test_rate_limiter_bucket_per_system() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=10, burst=20, clock=lambda: now[0])
    assert limiter.take("a", 20) == 0.0
    assert limiter.take("a", 5) == pytest.approx(0.5)
    assert limiter.take("b", 5) == 0.0  # another system has its own bucket
    now[0] = 0.5
    assert limiter.take("a", 5) == 0.0
    assert math.isinf(limiter.take("a", 21))
    assert RateLimiter.retry_after_header(0.01) == "1"
    assert RateLimiter(rate=0, burst=1).take("a", 10**6) == 0.0


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.0.0.5", False),
    ],
)
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_open_gateway_only_on_loopback(tmp_path: Path) -> None:
    assert "OPEN" in build_gateway(Settings(web_host="127.0.0.1")).access
    with pytest.raises(GatewayStartError, match="MOTCUA_GATEWAY_TOKENS_FILE"):
        build_gateway(Settings(web_host="0.0.0.0"))
    tokens = tmp_path / "tokens"
    tokens.write_text(f"alpha {token_hash('one')}\n")
    built = build_gateway(Settings(web_host="0.0.0.0", gateway_tokens_file=tokens))
    assert built.gateway.tokens is not None and "bearer" in built.access


def test_build_gateway_builds_the_served_application_from_settings(tmp_path: Path) -> None:
    sources = tmp_path / "sources.toml"
    sources.write_text('[sources.a]\nanswer = "portal"\n', encoding="utf-8")
    settings = Settings(gateway_sources_file=sources, gateway_trusted_proxies=("10.0.0.0/8",))
    built = build_gateway(settings)
    assert built.app[GATEWAY_KEY] is built.gateway
    assert built.gateway.sources.profile("a").answer is Answer.PORTAL
    assert [str(n) for n in built.gateway.trusted_proxies] == ["10.0.0.0/8"]
    assert {r.resource.canonical for r in built.app.router.routes() if r.resource} >= {
        "/v1/in/{secret}{tail}",
        "/v1/opencps{tail}",
        "/openapi.json",
    }
    # Each call builds its own: no state shared between two gateways of one process.
    other = build_gateway(settings)
    assert other.gateway is not built.gateway
    assert other.gateway.metrics.registry is not built.gateway.metrics.registry
    assert other.gateway.sessions is not built.gateway.sessions


def test_a_misspelt_sources_key_stops_the_start_naming_it(tmp_path: Path) -> None:
    sources = tmp_path / "sources.toml"
    sources.write_text('[sources.dvc]\npath_secret = "abc"\n', encoding="utf-8")
    with pytest.raises(GatewayStartError, match=r"\[sources\.dvc\]: unknown key 'path_secret'"):
        build_gateway(Settings(gateway_sources_file=sources))


def test_a_bad_trusted_proxy_stops_motcua_gateway_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MOTCUA_GATEWAY_TRUSTED_PROXIES", "10.0.0.0/8,unknown")
    assert run_gateway() == 2
    err = capsys.readouterr().err
    assert err == "motcua gateway: MOTCUA_GATEWAY_TRUSTED_PROXIES: 'unknown' is not a CIDR block\n"


def test_half_a_tls_pair_is_refused(tmp_path: Path) -> None:
    with pytest.raises(GatewayStartError, match="both"):
        build_gateway(Settings(gateway_tls_cert=tmp_path / "cert.pem"))


# -- source profiles and the procedures catalogue ----------------------------------------------

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "gateway"


def test_the_shipped_procedures_example_parses() -> None:
    # deploy/gateway/sources.toml: tests/unit/test_deploy_sources_example.py.
    days = parse_procedures((DEPLOY / "procedures.csv").read_text(encoding="utf-8"))
    assert days["1.000948"] == 15


@pytest.mark.parametrize(
    "text",
    [
        "[sources.x]\nauth = 'token'\n",
        "[sources.x]\nauth = 'opencps_session'\n",  # no dstcode hash
        "[sources.x]\ndstcode_sha256 = 'abc'\n",
        "[sources.x]\nanswer = 'xml'\n",
        "[sources.x]\ndefault_channel = 'fax'\n",
        "[sources.x]\ndefault_channel = ['direct']\n",  # a list: the file's error, not a crash
        "[sources.x]\nonline_if_applicant_account = 'yes'\n",
        "[sources.x]\nstatuses = { '11' = 'paused' }\n",
        "[sources.x]\nstatuses = { '8' = 'stopped' }\n",
        "[sources.x]\nfinished_without_date = 'later'\n",
        "[sources.x]\ncolour = 'blue'\n",
        "[other]\n",
        "[sources.x\n",
    ],
)
def test_bad_sources_files_are_refused(text: str) -> None:
    with pytest.raises(SourcesFileError):
        parse_sources(text)


@pytest.mark.parametrize(
    "text",
    [
        "code,days\n1.0,5\n",
        "procedure,working_days\n1.0,0\n",
        "procedure,working_days\n1.0,366\n",
        "procedure,working_days\n1.0,five\n",
        "procedure,working_days\n,5\n",
        "procedure,working_days\n1.0,5\n1.0,6\n",
    ],
)
def test_bad_procedures_files_are_refused(text: str) -> None:
    with pytest.raises(ProceduresFileError):
        parse_procedures(text)


def test_unit_names_compare_after_nfc_and_case_folding(tmp_path: Path) -> None:
    path = tmp_path / "units.csv"
    path.write_text("unit,agency\nSở Tư pháp,STP\n", encoding="utf-8")
    units = UnitsFile(path)
    units.load()
    decomposed = unicodedata.normalize("NFD", "SỞ TƯ PHÁP")
    assert decomposed != "SỞ TƯ PHÁP"
    assert units.agency_for(None, decomposed) == "STP"
    assert units.agency_for(None, "  sở   tư pháp ") == "STP"


def test_sources_and_procedures_files_reload_and_keep_the_last_good(tmp_path: Path) -> None:
    path = tmp_path / "sources.toml"
    path.write_text("[sources.a]\nanswer = 'portal'\n")
    sources = SourcesFile(path)
    sources.load()
    assert sources.profile("a").answer is Answer.PORTAL
    assert sources.profile("b") == SourceProfile()
    path.write_text("[sources.a]\nanswer = 'motcua'\n# changed\n")
    assert sources.profile("a").answer is Answer.MOTCUA
    path.write_text("[sources.a\n")
    assert sources.profile("a").answer is Answer.MOTCUA and sources.last_error
    days = tmp_path / "procedures.csv"
    days.write_text("procedure,working_days\n1.0,5\n")
    procedures = ProceduresFile(days)
    procedures.load()
    assert procedures.working_days(" 1.0 ") == 5 and procedures.working_days("2.0") is None
    assert ProceduresFile(None).working_days("1.0") is None


def test_trusted_proxies_are_cidr_blocks_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MOTCUA_GATEWAY_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1,")
    assert Settings.from_env().gateway_trusted_proxies == ("10.0.0.0/8", "192.0.2.1")
    monkeypatch.delenv("MOTCUA_GATEWAY_TRUSTED_PROXIES")
    assert Settings.from_env().gateway_trusted_proxies == ()
    monkeypatch.setenv("MOTCUA_GATEWAY_TRUSTED_PROXIES", "10.0.0.0/8,proxy.local")
    with pytest.raises(SettingsError, match=r"'proxy\.local' is not a CIDR block"):
        Settings.from_env()

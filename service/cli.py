"""The motcua command. User mistakes get one line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import NoReturn

from schemas import InvalidEvent, parse_timestamp
from service.outputs.dead_letter import DLQ_MAX_BYTES
from service.settings import Settings, SettingsError, broker_url


class UsageError(Exception):
    """Bad input on the command line: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


def _port(text: str) -> int:
    value = _positive(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"not a port: {text}")
    return value


def _broker(text: str) -> str:
    try:
        return broker_url(text)
    except SettingsError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1: {text}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text}")
    return value


def _local_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date like 2026-11-01: {text!r}") from None


# -- commands ---------------------------------------------------------------------------


def cmd_due(args: argparse.Namespace) -> int:
    from service.domain.calendar import LOCAL_TZ
    from service.domain.clock import computed_due

    try:
        received = parse_timestamp(args.received, "--received")
    except InvalidEvent as exc:
        raise UsageError(f"motcua due: {exc.detail}") from None
    if args.days > 365:
        raise UsageError("motcua due: --days must be 1–365 working days")
    due = computed_due(received, args.days, _calendar(args))
    print(due.astimezone(LOCAL_TZ).isoformat())
    return 0


def cmd_calendar(args: argparse.Namespace) -> int:
    if not 1995 <= args.year <= 2100:
        raise UsageError("motcua calendar: --year must be between 1995 and 2100")
    cal = _calendar(args)
    print(f"# {args.year}: weekdays that are not working days")
    for day in cal.days_off_on_weekdays(args.year):
        name = cal.holiday_name(day) or "day off (calendar file)"
        print(f"{day.isoformat()} {day:%a}  off      {name}")
    print(f"# {args.year}: make-up working days (weekend days that are worked)")
    for day in cal.makeup_working_days(args.year):
        print(f"{day.isoformat()} {day:%a}  working  make-up working day")
    return 0


def _calendar(args: argparse.Namespace):  # -> WorkingCalendar
    from service.domain.calendar import DEFAULT_CALENDAR, CalendarError, WorkingCalendar

    if getattr(args, "calendar_file", None) is None:
        return DEFAULT_CALENDAR
    try:
        return WorkingCalendar.from_file(args.calendar_file)
    except CalendarError as exc:
        raise UsageError(f"motcua: {exc}") from None


def cmd_broker(args: argparse.Namespace) -> int:
    from service.tools import broker

    try:
        if args.action == "start":
            print(broker.cli_start(args.port, args.data, nodes=args.nodes))
            return 0
        if args.action == "stop":
            print(broker.cli_stop(args.data))
            return 0
        running, message = broker.cli_status(args.data)
        print(message)
        return 0 if running else 3
    except broker.BrokerError as exc:
        print(f"motcua broker: {exc}", file=sys.stderr)
        return 1


def cmd_worker(args: argparse.Namespace) -> int:
    from service.worker import run

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        raise UsageError(f"motcua worker: {exc}") from None
    sys.argv = [sys.argv[0], "worker"]
    run(settings, loglevel=args.loglevel)
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from service.ingest.publisher import run_publish

    settings = Settings.from_env()
    code, message = run_publish(
        args.file, args.broker or settings.bootstrap, args.topic or settings.topic
    )
    print(message, file=sys.stderr if code else sys.stdout)
    return code


def cmd_simulate(args: argparse.Namespace) -> int:
    from service.ingest.publisher import PublishError
    from service.tools.simulate import IndexRates, SimulationError, run_simulation

    settings = Settings.from_env()
    sends = args.out is None and args.format == "events"
    broker = (args.broker or settings.bootstrap) if sends else None
    try:
        summary = run_simulation(
            dossiers=args.dossiers,
            rate=args.rate,
            overdue_ratio=args.overdue_ratio,
            seed=args.seed,
            out=args.out,
            broker=broker,
            topic=args.topic or settings.topic,
            output_format=args.format,
            index=IndexRates.parse(args.index_rates),
        )
    except SimulationError as exc:
        raise UsageError(f"motcua simulate: {exc}") from None
    except PublishError as exc:
        print(f"motcua simulate: {exc}", file=sys.stderr)
        return 1
    print(summary, file=sys.stderr if args.out == Path("-") else sys.stdout)
    return 0


def cmd_gateway(args: argparse.Namespace) -> int:
    from service.ingest.gateway.server import run_gateway

    return run_gateway(port=args.port)


def cmd_gateway_secret(args: argparse.Namespace) -> int:
    from service.ingest.gateway.credentials import new_path_secret, secret_hash

    secret = new_path_secret()
    print(f"path secret (put it in the sender's base URL, /v1/in/<secret>): {secret}")
    print(f'sources file: path_secret_sha256 = ["{secret_hash(secret)}"]')
    return 0


def cmd_gateway_password(args: argparse.Namespace) -> int:
    import getpass

    from service.ingest.gateway.credentials import hash_password

    # A terminal is asked without echo; a pipe is read as one line (never an argument:
    # argv is visible to every user of the machine).
    if sys.stdin.isatty():
        password = getpass.getpass("OpenCPS password (as in its DVCQG_INTEGRATION config): ")
    else:
        password = sys.stdin.readline().rstrip("\n")
    if not password:
        raise UsageError("motcua gateway-password: no password given")
    print(f'login_password = "{hash_password(password)}"')
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from service.tools.demo import run_demo

    return run_demo(dossiers=args.dossiers, rate=args.rate, port=args.port, duration=args.duration)


def cmd_report(args: argparse.Namespace) -> int:
    from service.outputs.report import run_report_cli

    if args.to < args.from_:
        raise UsageError("motcua report: --to is before --from")
    sheet = None
    if args.compare is not None:
        from service.outputs.compare import SheetError, load_score_sheet

        try:
            sheet = load_score_sheet(args.compare)
        except SheetError as exc:
            raise UsageError(f"motcua report: --compare {args.compare}: {exc}") from None
    partitions = args.partitions or Settings.from_env().partitions
    return run_report_cli(
        args.from_,
        args.to,
        args.agency,
        args.format,
        args.url,
        partitions,
        sheet,
        str(args.compare or ""),
    )


def cmd_board(args: argparse.Namespace) -> int:
    from service.outputs.board.server import run_board_cli

    return run_board_cli(
        args.workers,
        args.host,
        args.port,
        args.partitions,
        args.targets,
        args.interval,
        args.queue_size,
    )


def _steps(text: str) -> list[str]:
    from service.tools.bench.steps import STEPS

    names = [name.strip() for name in text.split(",") if name.strip()]
    known = [step.name for step in STEPS]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown step {', '.join(unknown) or '(none)'}; the steps are {', '.join(known)}"
        )
    return names


def _fix_topic(args: argparse.Namespace, command: str, fix: Callable[[Settings], str]) -> int:
    """A topic fix the worker names: the worker's settings (`--broker`/`--topic` over
    them), what was done in one line, or one line saying why not."""
    from service.tools.topics import TopicError

    settings = Settings.from_env()
    if args.broker:
        settings = replace(settings, broker=args.broker)
    if args.topic:
        settings = replace(settings, topic=args.topic)
    try:
        print(fix(settings))
    except TopicError as exc:
        print(f"motcua {command}: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_dlq_limit(args: argparse.Namespace) -> int:
    from service.tools.topics import raise_dead_letter_limit

    return _fix_topic(
        args, "dlq-limit", lambda settings: raise_dead_letter_limit(settings, args.bytes)
    )


def cmd_keep_events(args: argparse.Namespace) -> int:
    from service.tools.topics import keep_events_forever

    return _fix_topic(args, "keep-events", keep_events_forever)


def cmd_bench(args: argparse.Namespace) -> int:
    from service.tools.bench import run_bench

    return run_bench(quick=args.quick, markdown=args.markdown, peers=args.peers, only=args.only)


# -- parser ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="motcua", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def add(name: str, handler: Callable[[argparse.Namespace], int], help_: str) -> _Parser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(handler=handler, command=name)
        return p

    p = add("due", cmd_due, "print the computed due (rule R1) of a receipt")
    p.add_argument("--received", required=True, help="RFC 3339 with offset")
    p.add_argument("--days", required=True, type=_positive, help="working days (1–365)")
    p.add_argument("--calendar-file", type=Path, help="TOML file of extra days off/working days")

    p = add("calendar", cmd_calendar, "list a year's non-working weekdays and make-up days")
    p.add_argument("--year", required=True, type=_positive)
    p.add_argument("--calendar-file", type=Path, help="TOML file of extra days off/working days")

    p = add("broker", cmd_broker, "a local Apache Kafka broker (KRaft) for demo and tests")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.add_argument("--port", type=_port, default=9092)
    p.add_argument("--data", type=Path, help="data directory (default $MOTCUA_DATA_DIR or ./var)")
    p.add_argument("--nodes", type=_positive, default=1, help="start: a cluster of N (1 on --port)")

    p = add("worker", cmd_worker, "run a stream-processing worker (settings from MOTCUA_* env)")
    p.add_argument("--loglevel", default="info", choices=["debug", "info", "warning", "error"])

    p = add("publish", cmd_publish, "validate and send JSON Lines of dossier events")
    p.add_argument("file", nargs="?", default="-", help="a .jsonl file, or - for stdin")
    p.add_argument("--broker", type=_broker, help="host:port (default from MOTCUA_BROKER)")
    p.add_argument("--topic", help="default from MOTCUA_TOPIC")

    p = add("gateway", cmd_gateway, "HTTP ingestion: contract events and national-sync dossiers")
    p.add_argument(
        "--port", type=_port, help="default $MOTCUA_GATEWAY_PORT or 6070 (host: MOTCUA_WEB_HOST)"
    )

    add(
        "gateway-secret",
        cmd_gateway_secret,
        "a new path secret for a sender that sends no credential, and its sources-file line",
    )
    add(
        "gateway-password",
        cmd_gateway_password,
        "the sources-file line (scrypt) of an OpenCPS login password, read from stdin",
    )

    p = add("simulate", cmd_simulate, "simulated center traffic, to Kafka or JSON Lines")
    p.add_argument("--dossiers", type=_positive, default=1000)
    p.add_argument("--rate", type=_non_negative_float, default=100.0, help="events/s, 0 = max")
    p.add_argument("--overdue-ratio", type=_ratio, default=0.03)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, help="write JSON Lines here (- for stdout) instead")
    p.add_argument(
        "--format",
        choices=["events", "national-sync", "units"],
        default="events",
        help="events (contract); national-sync: DongBoHoSoMC bodies, one JSON array a line,"
        " then CapNhatTienDoHoSoMC progress bodies (envelopes) for the gateway; units: the"
        " matching MOTCUA_UNITS_FILE",
    )
    p.add_argument("--broker", type=_broker, help="host:port (default from MOTCUA_BROKER)")
    p.add_argument("--topic", help="default from MOTCUA_TOPIC")
    p.add_argument(
        "--index-rates",
        default="",
        help="QĐ 766 index fields and ratings, name=share,... (reported, fee, paid_online, "
        "digitised, reused, data_store, identity_verified, full_online, e_result, rated, "
        "dissatisfied); see docs/report.md",
    )

    p = add("demo", cmd_demo, "local broker + worker + simulated traffic; Ctrl-C stops all")
    p.add_argument("--dossiers", type=_positive, default=3000)
    p.add_argument("--rate", type=_non_negative_float, default=200.0)
    p.add_argument("--port", type=_port, default=6066, help="web port of the worker")
    p.add_argument(
        "--duration", type=_non_negative_float, default=0.0, help="stop after this many s"
    )

    p = add("report", cmd_report, "period report (received, resolved, in progress, QĐ 766 score)")
    p.add_argument("--from", dest="from_", required=True, type=_local_date)
    p.add_argument("--to", required=True, type=_local_date)
    p.add_argument("--agency")
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    p.add_argument(
        "--url",
        default="http://127.0.0.1:6066",
        help="URL[,URL…] of every worker (the report sums them all)",
    )
    p.add_argument(
        "--partitions",
        type=_positive,
        default=None,
        help="input partitions the workers must cover, each once (MOTCUA_PARTITIONS)",
    )
    p.add_argument(
        "--compare",
        type=Path,
        metavar="FILE",
        help="CSV of the portal's published scores (agency,indicator,points[,numerator,"
        "denominator]) to line up with the index; see docs/report.md",
    )

    p = add("board", cmd_board, "the center's live board over the workers (web page)")
    p.add_argument("--workers", default="http://127.0.0.1:6066", help="URL[,URL…] of workers")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on")
    p.add_argument("--port", type=_port, default=6080)
    p.add_argument(
        "--partitions", type=_positive, default=None, help="input partitions (MOTCUA_PARTITIONS)"
    )
    p.add_argument("--targets", type=Path, help="TOML file of targets (docs/board.md)")
    p.add_argument("--interval", type=_non_negative_float, default=5.0, help="seconds")
    p.add_argument("--queue-size", type=_positive, default=25, help="dossiers per queue")

    p = add(
        "dlq-limit",
        cmd_dlq_limit,
        "raise max.message.bytes of the dead-letter topic (<topic>-dlq) so every dead letter fits",
    )
    p.add_argument("--bytes", type=_positive, default=DLQ_MAX_BYTES, help="default 2 MiB")
    p.add_argument("--broker", type=_broker, help="host:port (default from MOTCUA_BROKER)")
    p.add_argument("--topic", help="the input topic (default from MOTCUA_TOPIC)")

    p = add(
        "keep-events",
        cmd_keep_events,
        "set the input topic's retention to forever (retention.ms and retention.bytes -1)",
    )
    p.add_argument("--broker", type=_broker, help="host:port (default from MOTCUA_BROKER)")
    p.add_argument("--topic", help="the input topic (default from MOTCUA_TOPIC)")

    p = add("bench", cmd_bench, "benchmarks against a real broker; last line is JSON")
    p.add_argument("--quick", action="store_true", help="a run of under 2 minutes")
    p.add_argument("--markdown", type=Path, help="also write the results as Markdown here")
    p.add_argument(
        "--peers", action="store_true", help="also measure Quix Streams on the same events"
    )
    p.add_argument(
        "--only",
        type=_steps,
        help="run these steps only, comma-separated (e.g. domain,history; see docs/benchmarks.md)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.handler(args)
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except SettingsError as exc:  # a MOTCUA_* variable out of range, whatever the command
        print(f"motcua {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130

"""Command line: seed a central system for a load run, or write a credentials file for any central system.

    python -m loadtests seed --db csms.db --chargers 1000 --cards 2000 --out creds.csv
    python -m loadtests creds --chargers 1000 --cards 2000 --out creds.csv [--password SECRET | --no-passwords]
    python -m loadtests run --headless --host ws://127.0.0.1:9000/ocpp -u 100 -r 10 -t 5m ...

Then run Locust with ``--ocpp-credentials creds.csv`` (see README, "Load testing").
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

from loadtests.credentials import generate, write_credentials


def build_parser() -> argparse.ArgumentParser:
    """The command line parser."""
    parser = argparse.ArgumentParser(prog="python -m loadtests", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('opencharge-stack')}")
    commands = parser.add_subparsers(dest="command", required=True)
    seed = commands.add_parser(
        "seed", help="seed the bundled central system's store and write the credentials"
    )
    seed.add_argument("--db", required=True, help="SQLite store of `python -m backend_stub serve --db`")
    creds = commands.add_parser("creds", help="only write a credentials file (for any central system)")
    for sub in (seed, creds):
        sub.add_argument("--chargers", type=int, required=True, help="number of chargers (Locust users)")
        sub.add_argument("--cards", type=int, required=True, help="number of idTags, shared round-robin")
        sub.add_argument(
            "--out", default="creds.csv", help="credentials file to write (default: %(default)s)"
        )
        sub.add_argument("--prefix", default="LT-CP-", help="charge point id prefix (default: %(default)s)")
        sub.add_argument("--tag-prefix", default="LT", help="idTag prefix (default: %(default)s)")
        auth = sub.add_mutually_exclusive_group()
        auth.add_argument(
            "--no-passwords", action="store_true", help="chargers connect without HTTP Basic auth"
        )
        auth.add_argument("--password", help="one password for every charger (default: a random one each)")
    seed.add_argument(
        "--prepaid-balance",
        type=int,
        metavar="MINOR_UNITS",
        help="make the cards prepaid with this balance (default: personal cards, billed afterwards)",
    )
    seed.add_argument("--no-tariff", action="store_true", help="do not install the default load-test tariff")
    commands.add_parser(
        "run",
        help="run Locust with this package's locustfile; every further argument goes to locust",
        add_help=False,
    )
    return parser


LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"


def run_locust(locust_args: Sequence[str]) -> int:
    """Run Locust on the packaged locustfile (from a checkout or an installed wheel alike)."""
    return subprocess.call([sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), *locust_args])


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = build_parser()
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["run"]:
        return run_locust(args_list[1:])
    args = parser.parse_args(args_list)
    if args.chargers < 1 or args.cards < 1:
        parser.error("--chargers and --cards must be at least 1")
    if args.password is not None and not 1 <= len(args.password) <= 40:
        parser.error("--password must be 1-40 characters")
    try:
        rows = generate(
            args.chargers,
            args.cards,
            prefix=args.prefix,
            tag_prefix=args.tag_prefix,
            passwords=not args.no_passwords,
            fixed_password=args.password,
        )
    except ValueError as exc:
        parser.error(str(exc))
    if args.command == "seed":
        from backend_stub.store import StoreError
        from loadtests.seed import seed_store

        try:
            result = seed_store(
                args.db, rows, prepaid_balance_minor=args.prepaid_balance, tariff=not args.no_tariff
            )
        except StoreError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(
            f"seeded {args.db}: {result.chargers_added} chargers added, {result.chargers_updated} updated, "
            f"{result.cards_added} cards added, default tariff {result.tariff_id or 'unchanged'}"
        )
    write_credentials(args.out, rows)
    print(f"wrote {len(rows)} chargers to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

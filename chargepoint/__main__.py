"""Command line: ``python -m chargepoint run --config FILE`` and ``python -m chargepoint ctl --config FILE ...``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from typing import Any

from chargepoint import config as config_mod
from chargepoint.errors import ChargePointError, ConfigError, HardwareError, StorageError


class _VersionAction(argparse.Action):
    """``--version``: reads the installed version only when asked (importlib.metadata costs every `ctl` call
    ~20 ms of start-up otherwise)."""

    def __call__(
        self, parser: argparse.ArgumentParser, ns: argparse.Namespace, values: Any, option: str | None = None
    ) -> None:
        from importlib.metadata import version

        print(f"{parser.prog} {version('opencharge-stack')}")
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m chargepoint", description=__doc__)
    parser.add_argument("--version", action=_VersionAction, nargs=0, help="show the version and exit")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the agent")
    run.add_argument("--config", required=True, help="station TOML file")
    run.add_argument("--log-level", default="INFO", help="DEBUG shows every raw OCPP frame")
    check = sub.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("--config", required=True)
    ctl = sub.add_parser("ctl", help="drive a running agent's simulated hardware; print its status")
    ctl.add_argument("--config", required=True)
    ctl.add_argument(
        "args",
        nargs="+",
        help="plug N | unplug N | swipe N IDTAG | meter-fault N on|off | reader-fault N on|off | status",
    )
    probe = sub.add_parser(
        "probe", help="wiring check: read meters, wait for cards, optionally switch relays"
    )
    probe.add_argument("--config", required=True)
    probe.add_argument("--relay", action="store_true", help="also close then open each relay once")
    probe.add_argument(
        "--card-timeout-s", type=float, default=10.0, help="how long to wait for a card per reader"
    )
    off = sub.add_parser("relays-off", help="drive every relay open and exit (systemd ExecStopPost)")
    off.add_argument("--config", required=True)
    return parser


async def _relays_off(cfg: config_mod.AgentConfig) -> int:
    """Open every configured relay directly through its driver; 0 if all opened."""
    from hardware.factory import DRIVERS, SimConnector

    failed = 0
    for index, connector in enumerate(cfg.connectors):
        key = f"connectors[{index}].relay"
        try:
            relay = DRIVERS["relay"][connector.relay.driver](connector, key, SimConnector())
            await relay.open()
            release = getattr(relay, "release", None)
            if release is not None:
                release()
            print(f"connector {connector.id}: relay open")
        except (ChargePointError, KeyError, OSError) as exc:
            failed += 1
            print(f"connector {connector.id}: relay NOT confirmed open: {exc}", file=sys.stderr)
    return 1 if failed else 0


async def _run(cfg: config_mod.AgentConfig) -> None:
    from chargepoint.agent import Agent
    from chargepoint.control import ControlServer

    agent = Agent(cfg)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, agent.shutdown)
    control = None
    if cfg.control_socket:
        control = ControlServer(
            cfg.control_socket,
            lambda: agent.station,
            agent.sims,
            lambda: agent.link.state() if agent.link is not None else None,
        )
        await control.start()
    try:
        await agent.run()
    finally:
        if control is not None:
            await control.stop()


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (2: bad config, 3: storage unusable, 4: hardware unusable)."""
    args = _parser().parse_args(argv)
    try:
        cfg = config_mod.load(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "probe":
        from chargepoint.probe import run_probe

        return run_probe(cfg, relay=args.relay, card_timeout_s=args.card_timeout_s)
    if args.command == "relays-off":
        return asyncio.run(_relays_off(cfg))
    if args.command == "check-config":
        from hardware.factory import check_ports

        try:
            for index, connector in enumerate(cfg.connectors):
                check_ports(index, connector)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"{args.config}: ok ({len(cfg.connectors)} connectors, CSMS {cfg.csms.url})")
        return 0
    if args.command == "ctl":
        from chargepoint.control import ControlError, send_command

        if not cfg.control_socket:
            print(
                "error: config key 'control.socket' is not set, so the agent has no control interface",
                file=sys.stderr,
            )
            return 2
        try:
            result = asyncio.run(send_command(cfg.control_socket, args.args))
        except ControlError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(json.dumps(result, indent=2) if not isinstance(result, str) else result)
        return 0
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.log_level.upper() != "DEBUG":
        logging.getLogger("websockets").setLevel(logging.WARNING)
        logging.getLogger("transitions").setLevel(logging.WARNING)  # it logs every callback at INFO
        # pymodbus logs each timeout at ERROR with a frame dump; the station reports meter failures itself.
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_run(cfg))
    except ConfigError as exc:  # a driver option, found while building the ports
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except StorageError as exc:
        print(f"error: storage: {exc}", file=sys.stderr)
        return 3
    except HardwareError as exc:  # e.g. a GPIO chip that cannot be opened; the relay was never switched
        print(f"error: hardware: {exc}", file=sys.stderr)
        return 4
    return 0


if __name__ == "__main__":
    sys.exit(main())

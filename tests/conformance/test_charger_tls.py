"""The charger runner on wss://: this project's agent (its own process, driven by the ctl actuation profile)
connects with security profile 2 (server certificate + HTTP Basic) or 3 (client certificate) and passes the TLS
cases of both versions; an agent at profile 2 fails the client-certificate case; without TLS options those cases
are not applicable (the whole-suite tests), and a half-given TLS option is a setup error."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from conformance.__main__ import run_cli
from conformance.report import EXIT_SETUP
from tests.conformance.test_charger_suite import AGENT_CONFIG, charger_args, free_port
from tests.pki import issue

pytestmark = pytest.mark.timeout(300)

CASES = {"1.6": ("TC_086_CS", "TC_087_CS"), "2.0.1": ("TC_A_04_CS", "TC_A_07_CS")}


def tls_agent(tmp_path: Path, version: str, profile: int, ca: Path) -> tuple[int, Path]:
    """The agent's config at ``profile`` (2, or 3 with a client certificate for CP-AGENT from its own CA, written
    as ``tmp_path/client-ca.pem``), trusting ``ca`` for the central system's certificate."""
    port = free_port()
    tls = f'ca_file = "{ca}"\n'
    if profile == 3:
        now = datetime.now(UTC)
        client_ca = issue("Charger CA", now, ca=True)
        client_ca.write(tmp_path, "client-ca")
        cert, key = issue("CP-AGENT", now, issuer=client_ca, client=True).write(tmp_path, "client")
        tls += f'client_cert = "{cert}"\nclient_key = "{key}"\n'
    text = (
        AGENT_CONFIG.format(port=port, dir=tmp_path)
        .replace("ws://", "wss://", 1)
        .replace("security_profile = 1", f"security_profile = {profile}", 1)
        .replace("[csms]\n", f'[csms]\nocpp_versions = ["{version}"]\n{tls}', 1)
    )
    config = tmp_path / "station.toml"
    config.write_text(text, encoding="utf-8")
    return port, config


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_the_agent_at_profile_3_passes_the_tls_cases(tmp_path: Path, version: str) -> None:
    now = datetime.now(UTC)
    server_ca = issue("CSMS CA", now, ca=True)
    ca_pem, _ = server_ca.write(tmp_path, "server-ca")
    cert, key = issue("127.0.0.1", now, issuer=server_ca, server_ip="127.0.0.1").write(tmp_path, "server")
    port, config = tls_agent(tmp_path, version, 3, ca_pem)
    tls = ["--tls-cert", str(cert), "--tls-key", str(key), "--tls-ca", str(tmp_path / "client-ca.pem")]
    args = charger_args(port, config, "--version", version, "--cases", ",".join(CASES[version]), *tls)
    code, report = await run_cli(args)
    assert report is not None
    assert {r.id: (str(r.verdict), r.reason) for r in report.results} == dict.fromkeys(
        CASES[version], ("passed", "")
    )
    assert code == 0
    client = next(r for r in report.results if r.id == CASES[version][1])
    assert any("client certificate names ['CP-AGENT']" in t.text for t in client.trace)


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_an_agent_at_profile_2_passes_the_server_case_and_fails_the_client_certificate_case(
    tmp_path: Path, version: str
) -> None:
    # --tls-self-signed writes the throwaway CA before the runner starts the agent, which trusts it.
    pki_dir = tmp_path / "pki"
    port, config = tls_agent(tmp_path, version, 2, pki_dir / "ca.pem")
    client_ca = issue("Charger CA", datetime.now(UTC), ca=True).write(tmp_path, "client-ca")[0]
    tls = ["--tls-self-signed", str(pki_dir), "--tls-ca", str(client_ca)]
    # The agent's config names ca.pem, which must exist when the config is checked: the runner writes it first.
    args = charger_args(port, config, "--version", version, "--cases", ",".join(CASES[version]), *tls)
    code, report = await run_cli(args)
    assert report is not None
    verdicts = {r.id: (str(r.verdict), r.reason) for r in report.results}
    server_case, client_case = CASES[version]
    assert verdicts[server_case] == ("passed", "")
    assert verdicts[client_case][0] == "failed"
    assert "presented no client certificate" in verdicts[client_case][1]
    assert code != 0 and code != EXIT_SETUP


async def test_a_tls_key_without_its_certificate_is_a_setup_error(tmp_path: Path) -> None:
    port = free_port()
    code, report = await run_cli(
        ["charger", "--listen", f"127.0.0.1:{port}", "--tls-key", str(tmp_path / "k.pem"), "-q"]
    )
    assert report is not None
    assert report.setup_error == "TLS set-up: --tls-cert and --tls-key go together"
    assert code == EXIT_SETUP

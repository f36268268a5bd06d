"""The central system's certificate authority for security profile 3: it signs the chargers' client certificates.

A charger sends a CSR (OCPP 1.6 security whitepaper SignCertificate / OCPP 2.0.1 A02); it is signed only when it
is a well-formed PKCS#10 request with a valid self-signature, a key of an accepted type and size, and a subject CN
equal to the sender's charger id (whitepaper §3.3.2: the CN is the Charge Point identity). The signed certificate
is then sent to the charger with the CA (CertificateSigned); the profile-3 server checks client certificates
against the same CA (`serve --tls-client-ca`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from backend_stub.domain.commands import ChargerCommands
from backend_stub.errors import CentralError, CommandFailed, NotConnected
from backend_stub.logs import RateLimitFilter
from backend_stub.store import ClientCertificate, CsmsStore, StoreError

log = logging.getLogger(__name__)
# A charger may send SignCertificate in a loop: each rejection is a line, a few per second at most (also in tests
# and embedded uses, not only under `serve`, which limits the other domain loggers).
log.addFilter(RateLimitFilter())

MAX_CSR_CHARS = 5500  # OCPP 1.6 security whitepaper SignCertificate.req csr: string[0..5500]
CA_VALIDITY = timedelta(days=3650)
LEAF_VALIDITY = timedelta(days=365)
MIN_RSA_BITS = 2048
# An RSA public exponent a stranger picks sets the cost of checking the CSR's self-signature on our event loop: a
# 3000-bit exponent costs ~11 ms per CSR (65537 costs 0.05 ms). Real keys use 65537; nothing needs more than 32 bits.
MAX_RSA_EXPONENT_BITS = 32
EC_CURVES = (ec.SECP256R1, ec.SECP384R1)
# CSRs one charger may have judged and signed an hour (`serve --csr-per-hour`), all of them at once at most. A
# charger that gets no certificate resends its CSR after CertSigningWaitMinimum, doubling the wait, at most
# CertSigningRepeatTimes times (2.0.1 A02.FR.17-19 / A03.FR.17-19; the 1.6 security whitepaper's keys of the same
# names); with the usual 60 s and 3 that is 4 CSRs in 7 minutes, and a TriggerMessage starts another round.
CSR_PER_HOUR = 10
MAX_QUOTA_ENTRIES = 100_000  # chargers whose quota is remembered (a full bucket is forgotten first)


class CsrRejected(CentralError):
    """A CSR that is not signed: malformed, badly self-signed, a weak key, or a CN other than the charger id."""


@dataclass(frozen=True)
class CsrVerdict:
    """Whether a charger's CSR is taken (signed, CertificateSigned follows) and, if not, why: ``reason`` is an OCPP
    2.0.1 StatusInfoType reasonCode (string[0..20]), ``detail`` its additionalInfo (string[0..512])."""

    accepted: bool
    reason: str = ""
    detail: str = ""


ACCEPTED = CsrVerdict(True)


class SigningQuota:
    """A token bucket per charger: ``per_hour`` CSRs an hour, up to ``per_hour`` at once after a quiet hour.

    Judging and signing a CSR costs the event loop a signature check and a signature, and each signed certificate
    is a row: a charger sending SignCertificate in a loop must not make the central system sign without end.
    """

    def __init__(
        self,
        per_hour: int = CSR_PER_HOUR,
        *,
        max_entries: int = MAX_QUOTA_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``per_hour`` >= 1; the clock is injectable for tests."""
        if per_hour < 1:
            raise ValueError(f"csr_per_hour must be at least 1, got {per_hour}")
        self.per_hour = per_hour
        self.max_entries = max_entries
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # cp_id -> (tokens, clock time they were counted)
        self.refused = 0  # CSRs refused for the quota since start

    def _tokens(self, cp_id: str, now: float) -> float:
        tokens, at = self._buckets.get(cp_id, (float(self.per_hour), now))
        return min(float(self.per_hour), tokens + max(0.0, now - at) * self.per_hour / 3600)

    def take(self, cp_id: str) -> float | None:
        """Take one CSR of ``cp_id``'s quota: None if taken, else the seconds until the next one is free."""
        now = self._clock()
        tokens = self._tokens(cp_id, now)
        if tokens < 1:
            self._buckets[cp_id] = (tokens, now)
            self.refused += 1
            return (1 - tokens) * 3600 / self.per_hour
        if len(self._buckets) >= self.max_entries and cp_id not in self._buckets:
            # Bounded: a full bucket holds nothing back, so it is the same as no entry.
            self._buckets = {k: v for k, v in self._buckets.items() if self._tokens(k, now) < self.per_hour}
        self._buckets[cp_id] = (tokens - 1, now)
        return None


@dataclass(frozen=True)
class IssuedCertificate:
    """A signed charger certificate: the chain to send (leaf then CA, PEM), its serial and its expiry."""

    chain_pem: str
    serial_hex: str
    not_after: datetime


class CertificateAuthority:
    """A CA key and certificate that sign the chargers' CSRs."""

    def __init__(
        self, certificate: x509.Certificate, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    ) -> None:
        """Sign with ``key`` as ``certificate``'s subject."""
        self.certificate = certificate
        self.key = key

    @classmethod
    def load(cls, cert_path: str | Path, key_path: str | Path) -> CertificateAuthority:
        """A CA from PEM files (``serve --ca-cert/--ca-key``); raises ValueError naming the file."""
        try:
            certificate = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
        except (OSError, ValueError) as exc:
            raise ValueError(f"--ca-cert {cert_path}: {exc}") from exc
        try:
            key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=None)
        except (OSError, ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise ValueError(f"--ca-key {key_path}: {exc}") from exc
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise ValueError(f"--ca-key {key_path}: an RSA or EC key is needed")
        spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        if key.public_key().public_bytes(*spki) != certificate.public_key().public_bytes(*spki):
            raise ValueError(f"--ca-key {key_path} is not the key of --ca-cert {cert_path}")
        return cls(certificate, key)

    @classmethod
    def load_or_create(
        cls, cert_path: Path, key_path: Path, name: str, now: datetime
    ) -> CertificateAuthority:
        """The CA stored at these paths, or a new one (EC P-256, key file mode 0600) stored there first."""
        if cert_path.exists() or key_path.exists():
            return cls.load(cert_path, key_path)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        key_path.parent.mkdir(parents=True, exist_ok=True)
        # Created with mode 0600 (never readable by others, not even for a moment), and only then written.
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key_pem)
        cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        log.warning(
            "generated a certificate authority for security profile 3: %s (key %s)", cert_path, key_path
        )
        return cls(certificate, key)

    @property
    def pem(self) -> str:
        """The CA certificate in PEM."""
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    def sign(self, cp_id: str, csr_pem: str, now: datetime) -> IssuedCertificate:
        """Sign ``cp_id``'s CSR as a TLS client certificate; raises CsrRejected."""
        if not isinstance(csr_pem, str) or len(csr_pem) > MAX_CSR_CHARS:
            raise CsrRejected(f"the CSR must be a PEM string of at most {MAX_CSR_CHARS} characters")
        # The cheap checks (identity, key type and size) come before the self-signature, whose cost the key sets.
        try:
            csr = x509.load_pem_x509_csr(csr_pem.encode())
            names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            public_key = csr.public_key()
        except (ValueError, UnsupportedAlgorithm, UnicodeError) as exc:
            raise CsrRejected(f"not a PKCS#10 CSR: {str(exc)[:200]}") from None
        if len(names) != 1 or names[0].value != cp_id:
            shown = [str(n.value)[:64] for n in names[:2]]
            raise CsrRejected(f"the CSR's CN {shown} is not the charger id")
        if isinstance(public_key, rsa.RSAPublicKey):
            if public_key.key_size < MIN_RSA_BITS:
                raise CsrRejected(f"RSA keys need at least {MIN_RSA_BITS} bits")
            if public_key.public_numbers().e.bit_length() > MAX_RSA_EXPONENT_BITS:
                raise CsrRejected(f"the RSA public exponent has more than {MAX_RSA_EXPONENT_BITS} bits")
        elif not (
            isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(public_key.curve, EC_CURVES)
        ):
            raise CsrRejected("the key must be RSA (2048 bits or more) or EC P-256/P-384")
        try:
            self_signed = csr.is_signature_valid
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise CsrRejected(f"the CSR's signature cannot be checked: {str(exc)[:200]}") from None
        if not self_signed:
            raise CsrRejected("the CSR's signature does not verify")
        not_after = min(now + LEAF_VALIDITY, self.certificate.not_valid_after_utc)
        # The subject is built from the charger id alone: nothing else from the CSR is copied into the certificate.
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cp_id)]))
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        chain = certificate.public_bytes(serialization.Encoding.PEM).decode() + self.pem
        # X.509 times have whole seconds: the expiry is the certificate's, not the requested one.
        return IssuedCertificate(
            chain, format(certificate.serial_number, "x"), certificate.not_valid_after_utc
        )


def certificate_expiry(pem: str) -> datetime:
    """The notAfter (UTC) of the first certificate in ``pem``; ValueError if there is none."""
    return x509.load_pem_x509_certificates(pem.encode())[0].not_valid_after_utc.astimezone(UTC)


class ChargerCertificates:
    """Signs the chargers' CSRs and sends them the result through the command port (CertificateSigned)."""

    def __init__(
        self,
        ca: CertificateAuthority | None,
        commands: ChargerCommands,
        clock: Callable[[], datetime],
        store: CsmsStore,
        quota: SigningQuota | None = None,
    ) -> None:
        """Sign with ``ca`` (None: every CSR is rejected), at most ``quota`` per charger (default `CSR_PER_HOUR`),
        deliver through ``commands``, keep accepted ones in ``store``."""
        self.ca = ca
        self.commands = commands
        self.clock = clock
        self.store = store
        self.quota = quota if quota is not None else SigningQuota()
        self._tasks: set[asyncio.Task[None]] = set()
        self._over_quota: set[str] = set()  # chargers refused for the quota and not logged again since

    def issued(self, cp_id: str) -> ClientCertificate | None:
        """The latest certificate signed here that ``cp_id`` accepted (kept across restarts), or None."""
        return self.store.client_certificate(cp_id)

    def sign_request(self, cp_id: str, csr_pem: str) -> CsrVerdict:
        """Whether ``cp_id``'s CSR is accepted; if so the signed chain is sent to it right after the answer."""
        if self.ca is None:
            return CsrVerdict(False, "NoCA", "this central system signs no certificates")
        # A client certificate certifies whoever holds the link: only a charger the handshake authenticated (a
        # password, or a client certificate: its security profile never falls back) gets one. Without either,
        # anyone who connects under a registered id would obtain a lasting profile-3 identity for it.
        charger = self.store.charger(cp_id)
        if charger is None or not (charger.has_password or charger.security_profile >= 3):
            log.warning(
                "rejected a CSR from %s: its connection is not authenticated (no password, no client certificate)",
                cp_id,
                extra={"cp_id": cp_id},
            )
            return CsrVerdict(False, "NotAuthenticated", "no password and no client certificate")
        # Only one delivery per charger at a time: a charger repeating SignCertificate cannot pile up tasks (nor
        # make us sign what it could not receive).
        if any(t.get_name() == f"cert-signed-{cp_id}" and not t.done() for t in self._tasks):
            log.warning(
                "rejected a CSR from %s: its last certificate is still being delivered",
                cp_id,
                extra={"cp_id": cp_id},
            )
            return CsrVerdict(False, "DeliveryPending", "the last certificate is still being delivered")
        # Before any parsing: judging a CSR (its self-signature) costs as much as signing one.
        wait_s = self.quota.take(cp_id)
        if wait_s is not None:
            if cp_id not in self._over_quota:  # one line per charger until it gets a CSR judged again
                if len(self._over_quota) >= MAX_QUOTA_ENTRIES:
                    self._over_quota.clear()  # bounded; at worst a charger is logged once more
                self._over_quota.add(cp_id)
                log.warning(
                    "rejected CSRs from %s: more than %d an hour (logged once until it may send one again)",
                    cp_id,
                    self.quota.per_hour,
                    extra={"cp_id": cp_id},
                )
            return CsrVerdict(
                False,
                "RateLimited",
                f"at most {self.quota.per_hour} CSRs an hour; the next in {wait_s:.0f} s",
            )
        self._over_quota.discard(cp_id)
        try:
            issued = self.ca.sign(cp_id, csr_pem, self.clock())
        except CsrRejected as exc:
            log.warning("rejected a CSR from %s: %s", cp_id, exc, extra={"cp_id": cp_id})
            return CsrVerdict(False, "InvalidCSR", str(exc)[:512])
        task = asyncio.get_running_loop().create_task(
            self._deliver(cp_id, issued), name=f"cert-signed-{cp_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return ACCEPTED

    async def _deliver(self, cp_id: str, issued: IssuedCertificate) -> None:
        try:
            reply = await self.commands.certificate_signed(cp_id, issued.chain_pem)
        except (CommandFailed, NotConnected) as exc:
            log.warning("CertificateSigned to %s failed: %s", cp_id, exc, extra={"cp_id": cp_id})
            return
        if reply.accepted:
            try:
                self.store.record_client_certificate(
                    cp_id, issued.serial_hex, issued.not_after, issued.chain_pem, self.clock()
                )
            except StoreError as exc:
                log.error("cannot keep %s's client certificate: %s", cp_id, exc, extra={"cp_id": cp_id})
        log.info("%s answered CertificateSigned %s", cp_id, reply.status, extra={"cp_id": cp_id})

    async def close(self) -> None:
        """Cancel deliveries in flight (shutdown)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

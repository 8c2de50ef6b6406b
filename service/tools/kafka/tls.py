"""An extra SSL listener for a local broker: a self-made CA, the broker's key pair and a
truststore, made once with the JDK's keytool."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from service.tools.kafka.errors import BrokerError, first_error
from service.tools.kafka.host import HOST, STAMP, require_tool


@dataclass
class SslListener:
    """An extra SSL://127.0.0.1:<port> listener with a self-made CA, for security tests.

    The files are created by `LocalBroker.start()` under `<data_dir>/tls`; `cafile` is the PEM
    that Python clients pass as ssl_cafile / cafile.
    """

    port: int
    directory: Path | None = None

    @property
    def cafile(self) -> Path:
        return self._dir / "ca.pem"

    @property
    def keystore(self) -> Path:
        return self._dir / "broker.p12"

    @property
    def truststore(self) -> Path:
        return self._dir / "truststore.p12"

    @property
    def password(self) -> str:
        return (self._dir / "password").read_text(encoding="utf-8").strip()

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def _dir(self) -> Path:
        if self.directory is None:
            raise BrokerError(
                BrokerError.TLS_FAILED, "the TLS files do not exist until the broker has started"
            )
        return self.directory

    def ensure_files(self, directory: Path) -> None:
        """Create CA, broker key pair and truststore with keytool unless they already exist."""
        self.directory = directory
        if (directory / STAMP).is_file():
            return
        keytool = require_tool("keytool")
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        password = secrets.token_urlsafe(18)
        (directory / "password").write_text(password + "\n", encoding="utf-8")
        (directory / "password").chmod(0o600)
        ca_store = directory / "ca.p12"
        common = ["-storetype", "PKCS12", "-storepass", password, "-noprompt"]

        def run(store: Path, *args: str, stdin: str | None = None) -> str:
            command = [keytool, *args, "-keystore", str(store), *common]
            result = subprocess.run(command, input=stdin, capture_output=True, text=True)
            if result.returncode != 0:
                detail = first_error(result.stdout + result.stderr)
                raise BrokerError(BrokerError.TLS_FAILED, f"keytool {args[0]} failed: {detail}")
            return result.stdout

        # A CA that signs the broker's certificate (with an IP SAN), as in a real deployment:
        # Python 3.13's default context verifies strictly (VERIFY_X509_STRICT) and is picky
        # about CA extensions, which a lone self-signed certificate may lack.
        key = ["-keyalg", "RSA", "-keysize", "2048", "-validity", "3650"]
        ca_ext = ["-ext", "bc:c=ca:true", "-ext", "ku:c=keyCertSign,cRLSign"]
        san = "san=ip:127.0.0.1,dns:localhost"
        leaf_ext = ["-validity", "3650", "-ext", san, "-ext", "eku=serverAuth"]
        run(ca_store, "-genkeypair", "-alias", "ca", "-dname", "CN=motcua test CA", *key, *ca_ext)
        run(ca_store, "-exportcert", "-rfc", "-alias", "ca", "-file", str(self.cafile))
        run(self.keystore, "-genkeypair", "-alias", "broker", "-dname", "CN=localhost", *key)
        request = run(self.keystore, "-certreq", "-alias", "broker")
        signed = run(ca_store, "-gencert", "-rfc", "-alias", "ca", *leaf_ext, stdin=request)
        for store in (self.keystore, self.truststore):
            run(store, "-importcert", "-alias", "ca", "-file", str(self.cafile))
        run(self.keystore, "-importcert", "-alias", "broker", stdin=signed)
        (directory / STAMP).write_text("ok\n", encoding="utf-8")

    def server_properties(self) -> dict[str, str]:
        password = self.password
        return {
            "ssl.keystore.type": "PKCS12",
            "ssl.keystore.location": str(self.keystore),
            "ssl.keystore.password": password,
            "ssl.key.password": password,
            "ssl.truststore.type": "PKCS12",
            "ssl.truststore.location": str(self.truststore),
            "ssl.truststore.password": password,
        }

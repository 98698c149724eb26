"""A TLS front for tests: terminates TLS 1.2+ on a free loopback port with a certificate from a
throwaway CA (``ca_pem``, also as a one-file ``capath`` folder) and relays each connection in
plain TCP to ``target_port``, so the binary speaks real TLS to an otherwise plain peer."""
import datetime
import ipaddress
import socket
import ssl
import threading
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _cert(subject: str, issuer_key, issuer_name, key, ca: bool, san_ip=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
         .issuer_name(issuer_name or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=1))
         .not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san_ip:
        b = b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(san_ip))]),
                            critical=False)
    return b.sign(issuer_key, hashes.SHA256())


class TlsFront:
    """TLS on a free loopback port, relaying each connection to ``target_port`` in plain TCP;
    ``handshakes_failed`` counts refused handshakes."""

    def __init__(self, tmp, target_port: int):
        ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        ca = _cert("vault test CA", ca_key, None, ca_key, ca=True)
        leaf = _cert("127.0.0.1", ca_key, ca.subject, key, ca=False, san_ip="127.0.0.1")
        self.ca_pem = tmp / "vault-ca.pem"
        self.ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        (tmp / "capath").mkdir()
        (tmp / "capath" / "ca.pem").write_bytes(self.ca_pem.read_bytes())
        self.capath = tmp / "capath"
        (tmp / "front.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM)
                                        + ca.public_bytes(serialization.Encoding.PEM))
        (tmp / "front.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        self.ctx.load_cert_chain(tmp / "front.pem", tmp / "front.key")
        self.target_port = target_port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.addr = f"https://127.0.0.1:{self.sock.getsockname()[1]}"
        self.handshakes_failed = 0
        self._cond = threading.Condition()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw):
        try:
            conn = self.ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()
            with self._cond:
                self.handshakes_failed += 1
                self._cond.notify_all()
            return
        up = socket.create_connection(("127.0.0.1", self.target_port))

        def pump(src, dst):
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.close()
                    except OSError:
                        pass

        threading.Thread(target=pump, args=(up, conn), daemon=True).start()
        pump(conn, up)

    def failed_handshakes(self, at_least: int = 1, timeout: float = 5.0, settle: float = 0.3) -> int:
        """The count of refused handshakes once the server side has caught up: the client may
        exit before this side's thread has seen its handshake fail. Waits for ``at_least``, then
        ``settle`` seconds more so that any further (retried) connection is counted too."""
        with self._cond:
            self._cond.wait_for(lambda: self.handshakes_failed >= at_least, timeout)
        time.sleep(settle)
        with self._cond:
            return self.handshakes_failed

    def close(self):
        self.sock.close()

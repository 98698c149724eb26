#!/usr/bin/env python3
"""A SPIFFE Workload API server (X.509-SVID profile) of our own, written from the SPIFFE
Workload API and Workload Endpoint specifications and the SPIFFE project's ``workload.proto``
(copied in ``tests/spiffe/workload.proto``; its Python stubs are generated at run time into a
temporary folder with ``grpcio-tools``). SPIRE cannot be installed on these machines; this is
what the tests run instead. It never calls the product.

Contract
========

``WorkloadApi(ca, address=None)``: ``ca`` is a :class:`support.pki.Issued` CA that issues the
SVIDs (the verifying fake Roles Anywhere trusts it); ``address`` is a UNIX socket path (default:
a fresh one in a temporary folder) or ``"tcp"`` (127.0.0.1, a free port).

* ``.start()`` / ``.stop()`` (also a context manager); ``.uri``: the endpoint URI
  (``unix:///…`` or ``tcp://127.0.0.1:PORT``); ``.socket_path``.
* ``.issue(spiffe_id=DEFAULT_ID, hint="", **make_svid options)`` -> an :class:`SvidEntry`
  (certificate and key, not yet served); ``.set_svids(entries)`` serves that list from now on
  and pushes it on every open stream (each response is the complete set); ``.rotate()``
  re-issues every served SVID (same IDs and hints, new keys and serials) and pushes them;
  ``.served`` is the list being served; ``.history`` every list ever served.
* ``.deny(message)``: every open stream and every new call ends with ``PermissionDenied``
  (a workload not attested, or its SVIDs withdrawn) until ``.allow()``;
  ``.fail_with(code, message)`` the same with any status (``"INVALID_ARGUMENT"``, ...).
* ``.cut()``: every open stream ends with ``Unavailable`` (the agent restarting); new calls are
  served as usual.
* ``.set_raw(svids)``: serve this list of ``{"spiffe_id", "x509_svid", "x509_svid_key",
  "bundle", "hint"}`` dicts as it is (malformed answers).
* ``.calls``: the metadata of every call (a dict each); ``.open_streams``: how many are open.

Every call without the metadata ``workload.spiffe.io: true`` is answered ``InvalidArgument``
(the Workload API specification's "security header"). ``bundle`` is the CA's DER. ``x509_svid`` is the
leaf's DER followed by ``chain`` (intermediates) when the SVID has one.

Script: ``python tests/fakes/workload_api.py --socket PATH --ca-cert F --ca-key F
[--spiffe-id ID]`` serves one SVID until killed.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.resources
import pathlib
import sys
import tempfile
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from cryptography.hazmat.primitives import serialization

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from support.pki import Issued, make_svid  # noqa: E402

PROTO = HERE.parent / "spiffe" / "workload.proto"
DEFAULT_ID = "spiffe://example.org/ns/team-a/sa/app"
_stubs = None
_stubs_lock = threading.Lock()


def stubs():
    """``(workload_pb2, workload_pb2_grpc)``, generated once per process from ``PROTO``."""
    global _stubs
    with _stubs_lock:
        if _stubs is None:
            from grpc_tools import protoc
            out = tempfile.mkdtemp(prefix="workload-proto-")
            include = str(importlib.resources.files("grpc_tools") / "_proto")
            rc = protoc.main(["protoc", f"-I{PROTO.parent}", f"-I{include}",
                              f"--python_out={out}", f"--grpc_python_out={out}", PROTO.name])
            if rc != 0:
                raise RuntimeError(f"protoc failed on {PROTO}: exit {rc}")
            sys.path.insert(0, out)
            _stubs = (importlib.import_module("workload_pb2"),
                      importlib.import_module("workload_pb2_grpc"))
        return _stubs


@dataclass
class SvidEntry:
    spiffe_id: str
    issued: Issued
    hint: str = ""
    chain: tuple = ()
    options: dict = field(default_factory=dict)

    @property
    def serial(self) -> int:
        return self.issued.serial

    def message(self, pb2, bundle: bytes):
        der = self.issued.cert_der + b"".join(c.cert_der for c in self.chain)
        key = self.issued.key.private_bytes(serialization.Encoding.DER,
                                            serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption())
        return pb2.X509SVID(spiffe_id=self.spiffe_id, x509_svid=der, x509_svid_key=key,
                            bundle=bundle, hint=self.hint)


class WorkloadApi:
    """See the module docstring."""

    def __init__(self, ca: Issued, address: str | None = None):
        self.ca = ca
        self._cond = threading.Condition()
        self._version = 0
        self._cuts = 0
        self._deny: tuple | None = None
        self._raw: list[dict] | None = None
        self._stopping = False
        self.served: list[SvidEntry] = []
        self.history: list[list[SvidEntry]] = []
        self.calls: list[dict] = []
        self.open_streams = 0
        self._tmp = None
        if address == "tcp":
            self.socket_path = None
        else:
            if address is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="spiffe-")
                address = str(pathlib.Path(self._tmp.name) / "agent.sock")
            self.socket_path = pathlib.Path(address)
        self.port: int | None = None
        self._server: grpc.Server | None = None

    # ---- lifecycle ------------------------------------------------------------------------
    @property
    def uri(self) -> str:
        if self.socket_path is None:
            return f"tcp://127.0.0.1:{self.port}"
        return f"unix://{self.socket_path}"

    def start(self) -> "WorkloadApi":
        pb2, pb2_grpc = stubs()
        self._stopping = False
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
        # The generated base class answers the other methods Unimplemented.
        servicer = type("Servicer", (_Servicer, pb2_grpc.SpiffeWorkloadAPIServicer), {})
        pb2_grpc.add_SpiffeWorkloadAPIServicer_to_server(servicer(self, pb2), server)
        if self.socket_path is None:
            self.port = server.add_insecure_port("127.0.0.1:0")
        else:
            server.add_insecure_port(f"unix:{self.socket_path}")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._server is not None:
            self._server.stop(grace=0).wait(5)
            self._server = None
        if self.socket_path is not None:
            self.socket_path.unlink(missing_ok=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    # ---- what is served -------------------------------------------------------------------
    def issue(self, spiffe_id: str = DEFAULT_ID, hint: str = "", chain=(), issuer=None,
              **options) -> SvidEntry:
        issued = make_svid(issuer or self.ca, spiffe_id, **options)
        return SvidEntry(spiffe_id, issued, hint, tuple(chain), options)

    def _changed(self) -> None:
        self._version += 1
        self._cond.notify_all()

    def set_svids(self, entries: list[SvidEntry]) -> None:
        with self._cond:
            self.served = list(entries)
            self.history.append(self.served)
            self._raw = None
            self._changed()

    def rotate(self) -> list[SvidEntry]:
        with self._cond:
            old = self.served
        new = [self.issue(e.spiffe_id, e.hint, e.chain,
                          issuer=e.chain[0] if e.chain else None, **e.options) for e in old]
        self.set_svids(new)
        return new

    def set_raw(self, svids: list[dict]) -> None:
        with self._cond:
            self._raw = list(svids)
            self._changed()

    def deny(self, message: str = "no identity issued") -> None:
        self.fail_with("PERMISSION_DENIED", message)

    def fail_with(self, code: str, message: str) -> None:
        with self._cond:
            self._deny = (getattr(grpc.StatusCode, code), message)
            self._changed()

    def allow(self) -> None:
        with self._cond:
            self._deny = None
            self._changed()

    def cut(self) -> None:
        with self._cond:
            self._cuts += 1
            self._changed()

    def wait_for_streams(self, n: int, timeout: float = 10) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.open_streams >= n:
                return
            time.sleep(0.05)
        raise AssertionError(f"{self.open_streams} open streams, expected {n}")

    def _response(self, pb2):
        bundle = self.ca.cert_der
        if self._raw is not None:
            return pb2.X509SVIDResponse(svids=[pb2.X509SVID(**s) for s in self._raw])
        return pb2.X509SVIDResponse(svids=[e.message(pb2, bundle) for e in self.served])


class _Servicer:
    """``SpiffeWorkloadAPI``: ``FetchX509SVID`` only (the others answer Unimplemented)."""

    def __init__(self, api: WorkloadApi, pb2):
        self.api = api
        self.pb2 = pb2

    def FetchX509SVID(self, request, context):  # noqa: N802 - the proto's name
        api = self.api
        metadata = {k: v for k, v in context.invocation_metadata()}
        with api._cond:
            api.calls.append(metadata)
        if metadata.get("workload.spiffe.io") != "true":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "security header missing from request")
        with api._cond:
            cuts = api._cuts
            api.open_streams += 1
        try:
            while True:
                with api._cond:
                    if api._stopping:
                        return
                    if api._deny is not None:
                        deny = api._deny
                    elif api._cuts != cuts:
                        deny = None
                    else:
                        deny = False
                    if deny is False:
                        response, version = api._response(self.pb2), api._version
                if deny is None:
                    context.abort(grpc.StatusCode.UNAVAILABLE, "the agent is restarting")
                if deny:
                    context.abort(*deny)
                yield response
                with api._cond:
                    while (api._version == version and not api._stopping
                           and context.is_active()):
                        api._cond.wait(0.25)
                    if not context.is_active():
                        return
        finally:
            with api._cond:
                api.open_streams -= 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--socket", required=True)
    ap.add_argument("--ca-cert", required=True)
    ap.add_argument("--ca-key", required=True)
    ap.add_argument("--spiffe-id", default=DEFAULT_ID)
    a = ap.parse_args()
    from cryptography import x509
    ca = Issued(x509.load_pem_x509_certificate(pathlib.Path(a.ca_cert).read_bytes()),
                serialization.load_pem_private_key(pathlib.Path(a.ca_key).read_bytes(), None))
    api = WorkloadApi(ca, a.socket).start()
    api.set_svids([api.issue(a.spiffe_id)])
    print(f"serving {a.spiffe_id} on {api.uri}", file=sys.stderr, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        api.stop()


if __name__ == "__main__":
    main()

"""The container image, run the way Kubernetes runs it.

The image is built by ``scripts/build-image.sh`` (``buildah from scratch`` + the static musl
binary, committed as ``localhost/iamra-bootstrap:dev``; the script skips the build when the image
already holds this binary) and run with podman under the restrictions of the manifests'
securityContext: read-only root, uid/gid 65534, no capabilities, no-new-privileges, the
ServiceAccount token bind-mounted read-only at its Kubernetes path, the output directory a
tmpfs (an ``emptyDir`` with ``medium: Memory``) or a host directory owned by 65534 (so that the
test can look at the file). ``--network host`` lets the container reach the OpenBao dev server
and the fake Roles Anywhere endpoint on the host's loopback.

Skipped only when podman is not installed (``SETUP_CONTAINERS=1 scripts/setup.sh``; CI has it).
The binary put in the image: ``$IAMRA_IMAGE_BIN``, else ``$IAMRA_BIN`` when it is static, else
``target/x86_64-unknown-linux-musl/release/iamra-bootstrap`` (the script runs cargo for it).
With ``$IAMRA_IMAGE`` set, that image (e.g. one built from the Dockerfile) is tested as it is,
without building.
"""
from __future__ import annotations

import configparser
import contextlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import tarfile
import time
import uuid

import pytest
import requests

from fakes.rolesanywhere import FakeRolesAnywhere
from support.fake_ra import PROFILE_ARN, REGION, ROLE_ARN, TA_ARN
from support.openbao import free_port

ROOT = pathlib.Path(__file__).resolve().parent.parent
PREBUILT = os.environ.get("IAMRA_IMAGE")
IMAGE = PREBUILT or "localhost/iamra-bootstrap:dev"
MAX_IMAGE_BYTES = 8_000_000  # 8 MB
NOBODY = 65534
SA_TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"

pytestmark = pytest.mark.skipif(
    shutil.which("podman") is None,
    reason="podman is not installed (run SETUP_CONTAINERS=1 scripts/setup.sh; CI installs it)",
)


def podman_cmd() -> list[str]:
    """podman with the options this kind of machine needs (no systemd: cgroupfs; Debian's runc)."""
    cmd = ["podman", "--cgroup-manager=cgroupfs"]
    runc = "/usr/sbin/runc" if os.path.exists("/usr/sbin/runc") else shutil.which("runc")
    if runc:
        cmd += ["--runtime", runc]
    return cmd


# What an initContainer with the manifests' securityContext gets.
HARDENED = [
    "--network", "host",
    "--read-only",
    "--user", f"{NOBODY}:{NOBODY}",
    "--cap-drop", "ALL",
    "--security-opt", "no-new-privileges",
    "--pull", "never",
]


def podman(*args, timeout=120, check=False) -> subprocess.CompletedProcess:
    proc = subprocess.run([*podman_cmd(), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError(f"podman {args[0]} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def _is_static(path: pathlib.Path) -> bool:
    if not path.is_file():
        return False
    out = subprocess.run(["file", "-b", str(path)], capture_output=True, text=True).stdout
    return out.startswith("ELF") and "dynamically linked" not in out and "interpreter" not in out


def _image_binary() -> list[str]:
    """Argument for build-image.sh: an explicit binary, or none (its musl default)."""
    if os.environ.get("IAMRA_IMAGE_BIN"):
        return [os.environ["IAMRA_IMAGE_BIN"]]
    env_bin = os.environ.get("IAMRA_BIN")
    if env_bin and _is_static(pathlib.Path(env_bin)):
        return [env_bin]
    return []


@pytest.fixture(scope="session")
def image() -> dict:
    """Build (or reuse) the image; returns the script's output and the image's size in bytes."""
    if PREBUILT:
        size = json.loads(podman("image", "inspect", IMAGE, check=True).stdout)[0]["Size"]
        return {"reported_bytes": size, "stdout": f"prebuilt {IMAGE}: ({size} bytes)", "stderr": ""}
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build-image.sh"), *_image_binary()],
        cwd=ROOT, capture_output=True, text=True, timeout=3600,
        env={**os.environ, "IMAGE": IMAGE},
    )
    assert proc.returncode == 0, f"build-image.sh exited {proc.returncode}:\n{proc.stderr}{proc.stdout}"
    m = re.search(r"\((\d+) bytes\)", proc.stdout)
    assert m, f"build-image.sh did not report the image size:\n{proc.stdout}"
    return {"reported_bytes": int(m.group(1)), "stdout": proc.stdout, "stderr": proc.stderr}


@pytest.fixture
def ra(openbao):
    """A fake Roles Anywhere trusting the OpenBao root (the registered trust anchor)."""
    fake = FakeRolesAnywhere([openbao.root_ca_pem], region=REGION)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def sa_token(openbao, tmp_path) -> pathlib.Path:
    """A projected-style token for payments/bootstrapper, readable by uid 65534 (as the kubelet
    makes it for the pod's runAsUser)."""
    path = openbao.write_sa_token(tmp_path / "sa" / "token")
    path.chmod(0o644)
    return path


def nobody_dir(path: pathlib.Path) -> pathlib.Path:
    """A host directory the container's uid 65534 can write (an emptyDir's stand-in)."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        os.chown(path, NOBODY, NOBODY)
        path.chmod(0o700)
    except PermissionError:  # rootless podman: 65534 maps to a sub-uid
        path.chmod(0o1777)
    return path


def init_args(openbao, ra) -> list[str]:
    return [
        "init",
        "--vault-addr", openbao.addr,
        "--vault-role", openbao.k8s_role,
        "--pki-role", openbao.pki_templated_role,
        "--trust-anchor-arn", TA_ARN, "--profile-arn", PROFILE_ARN, "--role-arn", ROLE_ARN,
        "--endpoint", ra.url,
        "--credentials-file", "/creds/credentials",
    ]


def token_mount(sa_token: pathlib.Path) -> list[str]:
    return ["-v", f"{sa_token}:{SA_TOKEN_PATH}:ro"]


# ------------------------------------------------------------------------------------------------
def test_image_is_small_static_and_configured(image):
    assert image["reported_bytes"] <= MAX_IMAGE_BYTES, image["stdout"]
    info = json.loads(podman("image", "inspect", IMAGE, check=True).stdout)[0]
    assert info["Size"] <= MAX_IMAGE_BYTES
    cfg = info["Config"]
    assert cfg["User"] == f"{NOBODY}:{NOBODY}"
    assert cfg["Entrypoint"] == ["/iamra-bootstrap"]
    assert cfg["Cmd"] == ["init"]
    assert "HOME=/home/nobody" in cfg["Env"], cfg["Env"]
    labels = cfg.get("Labels") or {}
    for key in ("title", "description", "source", "licenses", "version"):
        assert labels.get(f"org.opencontainers.image.{key}"), f"label {key} missing: {labels}"
    assert labels["org.opencontainers.image.title"] == "iamra-bootstrap"
    assert info["Os"] == "linux" and info["Architecture"] == "amd64"
    assert len(info["RootFS"]["Layers"]) == 1


def test_image_holds_only_the_binary(image, tmp_path):
    archive = tmp_path / "image.tar"
    podman("image", "save", "--format", "oci-archive", "-o", archive, IMAGE, check=True)
    members = []
    with tarfile.open(archive) as outer:
        index = json.load(outer.extractfile("index.json"))
        manifest = json.load(outer.extractfile(
            "blobs/sha256/" + index["manifests"][0]["digest"].split(":", 1)[1]))
        for layer in manifest["layers"]:
            blob = outer.extractfile("blobs/sha256/" + layer["digest"].split(":", 1)[1])
            with tarfile.open(fileobj=blob, mode="r:*") as t:
                members += [(m.name.lstrip("./"), m) for m in t.getmembers()]
    files = {name: m for name, m in members if not m.isdir()}
    assert list(files) == ["iamra-bootstrap"], sorted(files)
    binary = files["iamra-bootstrap"]
    assert (binary.uid, binary.gid) == (0, 0)
    assert binary.mode & 0o777 == 0o555
    compressed = sum(layer["size"] for layer in manifest["layers"])
    print(f"image {IMAGE}: {image['reported_bytes']} bytes, compressed layer {compressed} bytes")


def test_version_and_help_run_in_the_hardened_container(image):
    proc = podman("run", "--rm", *HARDENED, IMAGE, "--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("iamra-bootstrap "), proc.stdout
    proc = podman("run", "--rm", *HARDENED, IMAGE, "--help")
    assert proc.returncode == 0, proc.stderr
    for command in ("credential-process", "init", "serve"):
        assert command in proc.stdout


def test_init_writes_profile_0600_as_nobody(image, openbao, ra, sa_token, tmp_path):
    creds = nobody_dir(tmp_path / "creds")
    proc = podman("run", "--rm", *HARDENED, *token_mount(sa_token), "-v", f"{creds}:/creds",
                  IMAGE, *init_args(openbao, ra))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    path = creds / "credentials"
    st = path.stat()
    assert st.st_mode & 0o777 == 0o600, oct(st.st_mode)
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (NOBODY, NOBODY)
    assert sorted(p.name for p in creds.iterdir()) == ["credentials"], "temp file left behind"
    ini = configparser.ConfigParser()
    ini.read(path)
    assert ra.count == 1
    issued = ra.issued[0]
    assert ini["default"]["aws_access_key_id"] == issued["accessKeyId"]
    assert ini["default"]["aws_secret_access_key"] == issued["secretAccessKey"]
    assert ini["default"]["aws_session_token"] == issued["sessionToken"]
    # The certificate the fake verified is the ServiceAccount's own identity.
    assert ra.requests[-1].verdict == "accepted"

    # A pod restart re-runs the init container: the same command overwrites in place.
    proc = podman("run", "--rm", *HARDENED, *token_mount(sa_token), "-v", f"{creds}:/creds",
                  IMAGE, *init_args(openbao, ra))
    assert proc.returncode == 0, proc.stderr
    ini.read(path)
    assert ra.count == 2 and ini["default"]["aws_access_key_id"] == ra.issued[1]["accessKeyId"]
    assert path.stat().st_mode & 0o777 == 0o600


def test_python_init_container_pod_spec_works_with_only_image_and_command(
        image, openbao, ra, sa_token, tmp_path):
    """The env of a pod spec written for the python/aws_signing_helper init container
    (VAULT_ADDR, VAULT_ROLE, VAULT_CERT_CN, ROLE_ARN, ANCHOR_ARN, PROFILE_ARN) and its volume at
    /home/nobody/.aws: credentials land there with no iamra-specific path setting."""
    aws = nobody_dir(tmp_path / "aws")
    env = {"VAULT_ADDR": openbao.addr, "VAULT_ROLE": openbao.k8s_role,
           "VAULT_CERT_CN": openbao.fixed_cn, "ROLE_ARN": ROLE_ARN, "ANCHOR_ARN": TA_ARN,
           "PROFILE_ARN": PROFILE_ARN}
    env_flags = [x for k, v in env.items() for x in ("-e", f"{k}={v}")]
    proc = podman("run", "--rm", *HARDENED, *token_mount(sa_token), "-v", f"{aws}:/home/nobody/.aws",
                  *env_flags, IMAGE, "init", "--pki-role", openbao.pki_role, "--endpoint", ra.url)
    assert proc.returncode == 0, proc.stderr
    ini = configparser.ConfigParser()
    ini.read(aws / "credentials")
    assert ini["default"]["aws_access_key_id"] == ra.issued[-1]["accessKeyId"]
    assert (aws / "credentials").stat().st_mode & 0o777 == 0o600


def test_init_into_memory_tmpfs(image, openbao, ra, sa_token):
    proc = podman("run", "--rm", *HARDENED, "--tmpfs", "/creds:mode=1777",
                  *token_mount(sa_token), IMAGE, *init_args(openbao, ra))
    assert proc.returncode == 0, proc.stderr
    assert ra.count == 1


def test_init_failure_reaches_termination_log(image, openbao, ra, tmp_path):
    """A token Vault refuses (other audience): exit 3, one stderr line, the reason in
    /dev/termination-log as the kubelet mounts it."""
    bad = openbao.write_sa_token(tmp_path / "sa" / "token", aud="not-openbao")
    bad.chmod(0o644)
    term = tmp_path / "termination-log"
    term.write_text("")
    term.chmod(0o666)
    creds = nobody_dir(tmp_path / "creds")
    proc = podman("run", "--rm", *HARDENED, *token_mount(bad), "-v", f"{creds}:/creds",
                  "-v", f"{term}:/dev/termination-log", IMAGE, *init_args(openbao, ra),
                  "--timeout", "5s")
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == ""
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("iamra-bootstrap: error: ")]
    assert len(lines) == 1, proc.stderr
    message = term.read_text()
    assert message.strip(), "termination log left empty"
    assert len(message.encode()) <= 4096
    assert not (creds / "credentials").exists()
    assert ra.count == 0


def test_serve_as_native_sidecar(image, openbao, ra, sa_token, tmp_path):
    """`serve` as in overlays/native-sidecar: listening on all addresses, /readyz once
    credentials are in hand, the ECS endpoint guarded by the token file on the shared volume."""
    shared = nobody_dir(tmp_path / "aws")
    port = free_port()
    name = f"iamra-serve-{uuid.uuid4().hex[:8]}"
    args = init_args(openbao, ra)[1:-2]  # drop "init" and --credentials-file
    run = podman("run", "-d", "--name", name, *HARDENED, *token_mount(sa_token),
                 "-v", f"{shared}:/var/run/aws", IMAGE, "serve", *args,
                 "--listen", f"0.0.0.0:{port}", "--auth-token-file", "/var/run/aws/token")
    assert run.returncode == 0, run.stderr
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        ready = None
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.ConnectionError):
                ready = requests.get(f"{base}/readyz", timeout=2)
                if ready.status_code == 200:
                    break
            state = podman("inspect", "--format", "{{.State.Running}}", name).stdout.strip()
            assert state == "true", podman("logs", name).stderr
            time.sleep(0.2)
        assert ready is not None and ready.status_code == 200, podman("logs", name).stderr
        assert requests.get(f"{base}/healthz", timeout=2).status_code == 200
        token = (shared / "token").read_text()
        assert token and "\n" not in token and "\r" not in token
        assert requests.get(f"{base}/v1/credentials", timeout=5).status_code in (401, 403)
        r = requests.get(f"{base}/v1/credentials", headers={"Authorization": token}, timeout=5)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["AccessKeyId"] == ra.issued[-1]["accessKeyId"]
        assert body["Token"] and body["Expiration"]
    finally:
        podman("rm", "-f", "-t", "2", name)


# ---- both architectures ------------------------------------------------------------------------

ARM64_BIN = ROOT / "target/aarch64-unknown-linux-musl/release/iamra-bootstrap"
AMD64_BIN = ROOT / "target/x86_64-unknown-linux-musl/release/iamra-bootstrap"


@pytest.mark.skipif(not ARM64_BIN.is_file(),
                    reason="arm64 binary not built: scripts/build-arm64.sh (or BUILD_ARM64=1 scripts/test.sh)")
def test_multiarch_manifest_holds_both_images_within_the_size_limit(tmp_path):
    """``build-image.sh --multiarch``: an amd64 and an arm64 image FROM scratch, each under the
    size limit, and a manifest list naming the two (names of its own, not the shared :dev)."""
    if PREBUILT:
        pytest.skip("IAMRA_IMAGE is set: testing a prebuilt image, not building")
    base = f"localhost/iamra-bootstrap-multiarch:{uuid.uuid4().hex[:12]}"
    manifest = f"{base}-list"
    env = {**os.environ, "IMAGE": base, "MANIFEST": manifest, "SKIP_CARGO_BUILD": "1"}
    try:
        proc = subprocess.run(["bash", str(ROOT / "scripts/build-image.sh"), "--multiarch"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr + proc.stdout
        listed = json.loads(subprocess.run(["buildah", "manifest", "inspect", manifest],
                                           capture_output=True, text=True, check=True).stdout)
        archs = sorted(m["platform"]["architecture"] for m in listed["manifests"])
        assert archs == ["amd64", "arm64"], listed
        for image, arch, binary in ((base, "amd64", AMD64_BIN), (f"{base}-arm64", "arm64", ARM64_BIN)):
            info = json.loads(podman("image", "inspect", image, check=True).stdout)[0]
            assert info["Architecture"] == arch and info["Os"] == "linux"
            assert info["Size"] <= MAX_IMAGE_BYTES, (image, info["Size"])
            assert len(info["RootFS"]["Layers"]) == 1
            labels = info["Config"]["Labels"]
            import hashlib
            assert labels["dev.iamra-bootstrap.binary.sha256"] == hashlib.sha256(
                binary.read_bytes()).hexdigest()
            assert info["Config"]["Entrypoint"] == ["/iamra-bootstrap"]
            assert info["Config"]["User"] == f"{NOBODY}:{NOBODY}"
    finally:
        subprocess.run(["buildah", "manifest", "rm", manifest], capture_output=True)
        podman("image", "rm", "-f", base, f"{base}-arm64")

"""The reading door is a lint, not a habit: a direct file read added outside ``src/bounded.rs``
fails ``cargo clippy``.

Contract (issue 17, ``clippy.toml``): ``disallowed-methods`` refuses ``std::fs::read``,
``std::fs::read_to_string``, ``std::fs::File::open``, ``std::fs::OpenOptions::open`` (allowed,
each with its reason, only where a file is opened for writing or locking, and for the TPM
device), ``std::io::Read::read_to_end`` and the
``rustls`` PEM file readers everywhere but the one reader module (``src/bounded.rs``, whose
functions carry ``#[allow(clippy::disallowed_methods)]``).

The test copies the crate (sources, manifest, lock file, ``clippy.toml``) to a temporary folder,
plants direct reads in four modules and runs ``cargo clippy`` there: it must fail and name each
planted call as a disallowed method. It reuses the target folder (``$CARGO_TARGET_DIR``, else
``target/``), so only the crate itself is checked again (under a minute on a warm target).
"""
from __future__ import annotations

import os
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

PLANTS = {
    # module file: (code appended, the disallowed path clippy must name)
    "src/cmd/read_certificate_data.rs": (
        "\n/// Planted by tests/test_lint_doors.py.\n"
        "pub(crate) fn planted_read() -> usize {\n"
        "    std::fs::read(\"/etc/hostname\").map(|b| b.len()).unwrap_or(0)\n}\n",
        "std::fs::read"),
    "src/keys/file.rs": (
        "\n/// Planted by tests/test_lint_doors.py.\n"
        "pub(crate) fn planted_text() -> String {\n"
        "    std::fs::read_to_string(\"/etc/hostname\").unwrap_or_default()\n}\n",
        "std::fs::read_to_string"),
    "src/source/files.rs": (
        "\n/// Planted by tests/test_lint_doors.py.\n"
        "pub(crate) fn planted_open() -> bool {\n"
        "    std::fs::File::open(\"/etc/hostname\").is_ok()\n}\n",
        "std::fs::File::open"),
    "src/serve/mod.rs": (
        "\n/// Planted by tests/test_lint_doors.py.\n"
        "pub(crate) fn planted_options() -> bool {\n"
        "    std::fs::OpenOptions::new().read(true).open(\"/etc/hostname\").is_ok()\n}\n",
        "std::fs::OpenOptions::open"),
}


def test_a_direct_file_read_outside_the_reader_fails_clippy(tmp_path):
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.skip("no cargo on PATH")
    crate = tmp_path / "crate"
    crate.mkdir()
    for name in ("Cargo.toml", "Cargo.lock", "clippy.toml", "build.rs"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, crate / name)
    shutil.copytree(ROOT / "src", crate / "src")
    # Cargo.toml may name benches or examples: copy what it points at, if present.
    for extra in ("benches", "examples"):
        if (ROOT / extra).is_dir():
            shutil.copytree(ROOT / extra, crate / extra)
    for rel, (code, _) in PLANTS.items():
        with open(crate / rel, "a") as f:
            f.write(code)
    # The planted functions are never called: dead code must not be what fails the run.
    lib = crate / "src/lib.rs"
    lib.write_text("#![allow(dead_code)]\n" + lib.read_text())
    target = os.environ.get("CARGO_TARGET_DIR") or str(ROOT / "target")
    proc = subprocess.run(
        [cargo, "clippy", "--locked", "--quiet", "--lib", "--", "-D", "warnings"],
        cwd=crate, capture_output=True, text=True, timeout=900,
        env={**os.environ, "CARGO_TARGET_DIR": target})
    assert proc.returncode != 0, "clippy passed with direct file reads planted"
    for rel, (_, path) in PLANTS.items():
        assert f"use of a disallowed method `{path}`" in proc.stderr, (rel, proc.stderr[-3000:])
        assert rel in proc.stderr, (rel, proc.stderr[-3000:])
    assert "read files through crate::bounded" in proc.stderr, proc.stderr[-3000:]

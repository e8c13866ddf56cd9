"""The TypeScript client (clients/typescript) against the live stack: its Node tests, run through
`npm test`, ingest, watch, search, delete and cancel through the real gateway, check its typed
errors and the README's Next.js route handlers, and try its TLS options on a local TLS server
with certificates made here; any failing Node test fails this test with the runner's output."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.stack import Stack
from tests.tls_certs import CertificateAuthority, Identity

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

PACKAGE = Path(__file__).resolve().parents[2] / "clients" / "typescript"


def write_certificates(folder: Path) -> Path:
    """The certificates test/tls.test.ts reads, under the names it reads them by."""
    ca, other = (
        CertificateAuthority(folder / "ca"),
        CertificateAuthority(folder / "other", "another CA"),
    )
    identities: dict[str, Identity] = {
        "server": ca.server(),
        "client": ca.client(),
        "wrong-name": ca.server("wrong-name", names=("elsewhere.example",)),
        "other-client": other.client(),
    }
    shutil.copy(ca.cert, folder / "ca.pem")
    shutil.copy(other.cert, folder / "other-ca.pem")
    for name, identity in identities.items():
        shutil.copy(identity.cert, folder / f"{name}.pem")
        shutil.copy(identity.key, folder / f"{name}-key.pem")
    return folder


@pytest.mark.parametrize("stack", ["redis"], indirect=True)
def test_the_typescript_client_against_the_stack(stack: Stack, tmp_path: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail(
            "npm not found: install Node.js 20 or later (Debian/Ubuntu: apt-get install nodejs npm)"
        )
    if not (PACKAGE / "node_modules" / ".installed").exists():
        pytest.fail(
            f"{PACKAGE} has no dependencies installed: run `make ts-client` (npm ci, then build)"
        )
    result = subprocess.run(
        [npm, "test"],
        cwd=PACKAGE,
        env={
            **os.environ,
            "RAGLINE_GATEWAY": stack.gateway,
            "RAGLINE_TEST_TLS_DIR": str(write_certificates(tmp_path)),
            "NO_COLOR": "1",
        },
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"the TypeScript client's tests failed:\n{output}"
    # The live suite ran against this stack, and nothing was cancelled by a failed hook.
    assert f"the client against the gateway at {stack.gateway}" in output, output
    for summary in ("tests [1-9]", "fail 0", "cancelled 0"):  # the runner's closing counts
        assert re.search(rf"^\S+ {summary}", output, re.MULTILINE), output

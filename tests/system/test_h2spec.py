"""h2spec, the HTTP/2 conformance suite, against `gateway serve` (issue 16, point 7):
every case passes, in cleartext with prior knowledge (RFC 9113 §3.3) and over TLS with
ALPN (RFC 9113 §3.2).

The binary is not a Python package: it is found by the GATEWAY_H2SPEC environment
variable (.ci/run sets it where the binary is), else at ../shared/tools/h2spec beside the
repository; without it these tests skip, saying so. The app it talks to
(tests/apps/h2spec_target.py) answers every path after a short wait, which the case on
SETTINGS_MAX_CONCURRENT_STREAMS needs (RFC 9113 §5.1.2), and reads any body first.
"""

from __future__ import annotations

import os
import subprocess
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from support.paths import TESTS_DIR
from support.processes import GatewayProcess, mount_file
from support.tls_certs import make_certs

# The cases of h2spec 2.0.0: a run that ends early (a crash, a timeout) reports fewer.
H2SPEC_CASES = 146
# h2spec waits this long for each frame it expects (its default, 2 s, is tight on a busy
# CI machine; a passing case never waits the whole of it).
H2SPEC_TIMEOUT_S = 5
# All of h2spec's cases, far over what they take here (~25 s).
RUN_DEADLINE_S = 100.0


def find_h2spec() -> Path | None:
    """GATEWAY_H2SPEC, else ../shared/tools/h2spec beside the repository, if present."""
    configured = os.environ.get("GATEWAY_H2SPEC")
    path = Path(configured) if configured else TESTS_DIR.parent.parent / "shared/tools/h2spec"
    return path if path.is_file() and os.access(path, os.X_OK) else None


H2SPEC = find_h2spec()
pytestmark = pytest.mark.skipif(
    H2SPEC is None,
    reason="h2spec not found: set GATEWAY_H2SPEC, or put it at ../shared/tools/h2spec",
)


def failed_cases(report: Path) -> tuple[int, list[str]]:
    """How many cases the JUnit report holds, and the names of those that did not pass
    (failed, erred or skipped), as "section: case"."""
    root = ElementTree.parse(report).getroot()
    total, failed = 0, []
    for suite in root.iter("testsuite"):
        for case in suite.iter("testcase"):
            total += 1
            if len(case):  # a <failure>, <error> or <skipped> child
                failed.append(f"{suite.get('name')}: {case.get('classname')}")
    return total, failed


@pytest.mark.parametrize("tls", [False, True], ids=["prior-knowledge", "tls"])
def test_h2spec_passes_every_case(tmp_path: Path, tls: bool) -> None:
    assert H2SPEC is not None
    server = ""
    if tls:
        certs = make_certs(tmp_path)
        server = f"certfile = {str(certs.cert_and_key)!r}"
    gateway = GatewayProcess(mount_file(tmp_path / "gateway.toml", server, app="h2spec_target:app"))
    try:
        gateway.wait_for_line("serving on")
        port = gateway.sock.getsockname()[1]
        report = tmp_path / "h2spec.xml"
        command = [str(H2SPEC), "-h", "127.0.0.1", "-p", str(port), "-j", str(report)]
        command += ["-o", str(H2SPEC_TIMEOUT_S), *(["-t", "-k"] if tls else [])]
        run = subprocess.run(command, capture_output=True, text=True, timeout=RUN_DEADLINE_S)
    finally:
        assert gateway.stop() == 0
    total, failed = failed_cases(report)
    summary = run.stdout[run.stdout.find("Failures:") :] if failed else ""
    assert not failed, f"h2spec: {len(failed)} of {total} failed: {failed}\n{summary}"
    assert total == H2SPEC_CASES, f"h2spec ran {total} cases\n{run.stdout[-2000:]}"
    assert run.returncode == 0, run.stdout[-2000:]

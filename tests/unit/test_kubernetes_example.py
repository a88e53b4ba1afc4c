"""examples/kubernetes/: the manifests agree with the mount file they were written for.

The YAML is read with a small indentation-based reader (PyYAML is not a dependency):
enough for the keys checked here, in files written by hand in block style.
"""

from __future__ import annotations

import math
import re

import pytest
from support.paths import EXAMPLES_DIR

from gateway.config.loader import Config, load_config

KUBERNETES_DIR = EXAMPLES_DIR / "kubernetes"
# Seconds the grace period keeps beyond shutdown_delay + graceful_timeout, at least: the
# apps' lifespan shutdown, closing the WSGI pools, the process exit.
MIN_MARGIN_S = 5


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(KUBERNETES_DIR / "gateway.toml")


@pytest.fixture(scope="module")
def deployment() -> list[str]:
    return (KUBERNETES_DIR / "deployment.yaml").read_text().splitlines()


def block(lines: list[str], key: str) -> list[str]:
    """The lines nested under the first `key:` line (more indented than it)."""
    for number, line in enumerate(lines):
        if line.strip().startswith(key + ":"):
            indent = len(line) - len(line.lstrip())
            nested = []
            for inner in lines[number + 1 :]:
                if inner.strip() and len(inner) - len(inner.lstrip()) <= indent:
                    break
                nested.append(inner)
            return nested
    raise AssertionError(f"no {key!r} in the manifest")


def value(lines: list[str], key: str) -> str:
    """The scalar after the first `key:` (a trailing comment and quotes removed)."""
    for line in lines:
        match = re.match(rf"\s*-?\s*{re.escape(key)}:\s*(.*)$", line)
        if match:
            return match.group(1).split(" #")[0].strip().strip('"')
    raise AssertionError(f"no {key!r} in {lines}")


def test_the_mount_file_is_for_a_container(config: Config) -> None:
    assert config.server.workers == 1
    assert config.server.health_path
    assert config.server.shutdown_delay > 0
    assert [str(bind) for bind in config.server.bind] == ["0.0.0.0:8000"]


def test_the_mounts_are_the_example_sites(config: Config) -> None:
    assert config.mounts == load_config(EXAMPLES_DIR / "gateway.toml").mounts


def test_the_grace_period_covers_the_whole_stop(config: Config, deployment: list[str]) -> None:
    grace_s = int(value(deployment, "terminationGracePeriodSeconds"))
    stop_s = config.server.shutdown_delay + config.server.graceful_timeout
    assert grace_s >= math.ceil(stop_s) + MIN_MARGIN_S


@pytest.mark.parametrize(
    ("probe", "endpoint"),
    [("startupProbe", "live"), ("livenessProbe", "live"), ("readinessProbe", "ready")],
)
def test_probes_use_the_health_paths(
    config: Config, deployment: list[str], probe: str, endpoint: str
) -> None:
    settings = block(deployment, probe)
    assert value(settings, "path") == f"{config.server.health_path}/{endpoint}"
    assert value(settings, "port") == "http"


def test_readiness_notices_a_stop_within_the_shutdown_delay(
    config: Config, deployment: list[str]
) -> None:
    readiness = block(deployment, "readinessProbe")
    noticed_s = int(value(readiness, "periodSeconds")) * int(value(readiness, "failureThreshold"))
    assert noticed_s < config.server.shutdown_delay


def test_the_container_port_is_the_bind_port(config: Config, deployment: list[str]) -> None:
    ports = block(deployment, "ports")
    assert value(ports, "name") == "http"
    assert int(value(ports, "containerPort")) == config.server.bind[0].port


def test_the_container_serves_this_mount_file(deployment: list[str]) -> None:
    command = value(deployment, "command")
    assert '"examples/kubernetes/gateway.toml"' in command
    dockerfile = (KUBERNETES_DIR / "Dockerfile").read_text()
    assert 'CMD ["gateway", "serve", "examples/kubernetes/gateway.toml"]' in dockerfile


def test_the_service_targets_the_named_port() -> None:
    service = (KUBERNETES_DIR / "service.yaml").read_text().splitlines()
    assert value(block(service, "ports"), "targetPort") == "http"
    assert value(block(service, "selector"), "app.kubernetes.io/name") == "gateway-example"

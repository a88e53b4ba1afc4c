"""A worker's shadowing: for each mount that shadows, its ShadowRule built from its
[[mount]] table (gateway/migration/shadow.py), with the pool, the mismatch log and, with
shadow_denoise on, the NoiseBook that the rule uses; and the drain's end of them all.

Rules:
1. Each mount that shadows gets a pool, a log and (with shadow_denoise) a noise book of
   its own, per worker; nothing is shared between mounts.
2. A mismatch log that cannot be opened is a configuration error naming shadow_log.
3. Closing cancels every copy still running, then closes the logs; it comes after the
   drain, before the shadow mounts' lifespan ends.
4. Layer 1: the shadow's parts only; no task of its own.
"""

from __future__ import annotations

import contextlib
from typing import Any

from gateway.config.mount_table import MountConfig
from gateway.errors import ConfigError
from gateway.migration.mismatches import MismatchLog, MismatchNotes
from gateway.migration.noise import NoiseBook
from gateway.migration.rules import RoutingCounters
from gateway.migration.shadow import RouteOf, RouteShadowCounters, ShadowPool, ShadowRule


class Shadows:
    """A worker's shadowing: a pool and a mismatch log for each mount that shadows."""

    def __init__(self) -> None:
        self._pools: list[ShadowPool] = []
        self._logs: list[MismatchLog] = []
        self._noise: dict[str, NoiseBook] = {}  # by routing mount label, with denoise on

    @property
    def started(self) -> int:
        """Copies started so far, by every mount (a test waits on it and in_flight)."""
        return sum(pool.started for pool in self._pools)

    @property
    def in_flight(self) -> int:
        return sum(pool.in_flight for pool in self._pools)

    def noise_json(self) -> dict[str, dict[str, Any]]:
        """Each denoising mount's learned noise, by label then route: the ledger's "noise"
        section (gateway/migration/ledger.py)."""
        return {label: book.to_json() for label, book in self._noise.items()}

    def noise_book(self, label: str) -> NoiseBook | None:
        return self._noise.get(label)

    def rule(
        self,
        mount: MountConfig,
        where: tuple[str, str],
        metrics: RoutingCounters | None,
        *,
        route_of: RouteOf | None = None,
        ledger: MismatchNotes | None = None,
    ) -> ShadowRule:
        """The mount's ShadowRule; `where` is (file, table) for the error about a log
        file that cannot be opened. The metrics count per route once they can
        (RouteShadowCounters)."""
        try:
            mismatches = MismatchLog(mount.shadow_log)
        except OSError as exc:
            reason = f"cannot open {mount.shadow_log!r}: {exc.strerror or exc}"
            raise ConfigError(*where, "shadow_log", reason) from exc
        pool = ShadowPool(mount.shadow_max_in_flight)
        self._pools.append(pool)
        self._logs.append(mismatches)
        ignore_json_keys = frozenset(mount.shadow_ignore_json_keys)
        noise = NoiseBook(ignore_json_keys) if mount.shadow_denoise else None
        if noise is not None:
            self._noise[mount.label] = noise
        route_counters = metrics if isinstance(metrics, RouteShadowCounters) else None
        return ShadowRule(
            mount.shadow,
            mount.shadow_percent,
            frozenset(mount.shadow_methods),
            ignore_json_keys,
            pool,
            mismatches,
            mount.label,
            metrics,
            frozenset(name.encode("ascii") for name in mount.shadow_drop_headers),
            mount.shadow_share,
            noise,
            mount.shadow_denoise_percent,
            frozenset(mount.shadow_ignore_headers),
            route_of,
            ledger,
            route_counters,
        )

    async def close(self) -> None:
        """Cancel every copy still running (the drain is over), then close the logs."""
        for pool in self._pools:
            await pool.close()
        for mismatches in self._logs:
            with contextlib.suppress(OSError):
                mismatches.close()

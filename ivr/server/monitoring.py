"""What a monitor reads: ``GET /healthz`` (the flows serving, the flow
files that fail validation, whether the store writes) and ``GET /metrics``
(counters in the Prometheus text format)."""

from __future__ import annotations

import json

from ivr.server.plain_resources import PlainResource


class HealthResource(PlainResource):
    """``GET /healthz``: the flows serving and their versions, and each flow
    file on disk that fails validation with its first problem
    (``file:line:col: error: message [code]``) and how many it has.  Still
    200 while they fail: the last good version of each keeps serving, and
    a monitor alerts on a non-empty ``invalid_files``.  503 with
    ``storage`` naming the cause while the store cannot write (callers are
    then answered from memory and put through to a human)."""

    def __init__(self, registry, storage=None):
        super().__init__()
        self.registry, self.storage = registry, storage

    def render_GET(self, request):
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        body = {"status": "ok", "flows": self.registry.versions(),
                "invalid_files": self.registry.invalid_files()}
        if self.storage is not None and not self.storage.ok:
            request.setResponseCode(503)
            body.update(status="storage_failing", storage=self.storage.cause)
        return json.dumps(body).encode("utf-8")


def _writer_lock_lines(lock) -> list[str]:
    """How often this process's writes waited for another process's (see
    ivr.store.sqlite.writer_lock), for how long, and how often too long."""
    if lock is None or not lock.available:
        return []
    return ["# TYPE ivr_writer_lock_waits_total counter",
            f"ivr_writer_lock_waits_total {lock.waits}",
            "# TYPE ivr_writer_lock_wait_seconds_total counter",
            f"ivr_writer_lock_wait_seconds_total {lock.waited:.6f}",
            "# TYPE ivr_writer_lock_timeouts_total counter",
            f"ivr_writer_lock_timeouts_total {lock.timeouts}"]


class MetricsResource(PlainResource):
    """Counters in the Prometheus text format."""

    def __init__(self, handler, registry):
        super().__init__()
        self.handler, self.registry = handler, registry

    def render_GET(self, request):
        c = self.handler.counters
        lines = [
            "# TYPE ivr_turns_total counter", f"ivr_turns_total {c.turns}",
            "# TYPE ivr_turns_replayed_total counter", f"ivr_turns_replayed_total {c.replayed}",
            "# TYPE ivr_failsafe_total counter", f"ivr_failsafe_total {c.failsafe}",
            "# TYPE ivr_calls_started_total counter", f"ivr_calls_started_total {c.calls_started}",
            "# TYPE ivr_status_callbacks_total counter",
            f"ivr_status_callbacks_total {c.status_callbacks}",
            "# TYPE ivr_calls_ended_total counter",
        ] + [f'ivr_calls_ended_total{{outcome="{o}"}} {n}' for o, n in sorted(c.by_outcome.items())]
        lines += _by_provider(c)
        lines += self._storage_lines()
        group = self.handler.group_commit
        if group is not None:  # writes per commit: how well turns share commits
            lines += ["# TYPE ivr_commits_total counter", f"ivr_commits_total {group.commits}",
                      "# TYPE ivr_committed_writes_total counter",
                      f"ivr_committed_writes_total {group.writes}"]
        lines += _writer_lock_lines(getattr(self.handler.store, "writer_lock", None))
        lines += ["# TYPE ivr_flow_info gauge"] + [
            f'ivr_flow_info{{flow="{name}",version="{version}"}} 1'
            for name, version in self.registry.versions().items()]
        request.setHeader(b"content-type", b"text/plain; version=0.0.4")
        return ("\n".join(lines) + "\n").encode("utf-8")

    def _storage_lines(self) -> list[str]:
        """Failed writes by cause, whether the store writes now, and the
        turns answered from memory because it did not."""
        storage = getattr(self.handler, "storage", None)
        if storage is None:
            return []
        return ["# TYPE ivr_storage_failures_total counter"] + [
            f'ivr_storage_failures_total{{cause="{cause}"}} {n}'
            for cause, n in sorted(storage.failures.items())] + [
            "# TYPE ivr_storage_ok gauge", f"ivr_storage_ok {int(storage.ok)}",
            "# TYPE ivr_turns_unsaved_total counter",
            f"ivr_turns_unsaved_total {self.handler.counters.unsaved_turns}",
            "# TYPE ivr_calls_in_memory gauge",
            f"ivr_calls_in_memory {self.handler.calls_in_memory}"]


def _by_provider(c) -> list[str]:
    """Turns and calls started, labelled by provider."""
    return (["# TYPE ivr_provider_turns_total counter"]
            + [f'ivr_provider_turns_total{{provider="{p}"}} {n}'
               for p, n in sorted(c.turns_by_provider.items())]
            + ["# TYPE ivr_provider_calls_started_total counter"]
            + [f'ivr_provider_calls_started_total{{provider="{p}"}} {n}'
               for p, n in sorted(c.calls_by_provider.items())])

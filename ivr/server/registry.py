"""The flows a server runs, reloaded when their files change.

A flow file that fails validation is never loaded: its problems are
logged with file:line:col and the last good version keeps serving.
Every version ever loaded stays available, because a call runs to its end
on the version it started with; after a restart an old version is rebuilt
from the copy kept in the call log.  A store that cannot keep a version
(full disk, a database that does not answer) does not stop the reload: the
version serves from memory and is kept at the next reload tick.
"""

from __future__ import annotations

from pathlib import Path

from twisted.logger import Logger
from twisted.python.failure import Failure

from ivr.flow.loader import flow_from_source, load_flow
from ivr.flow.model import Flow
from ivr.flow.problems import FlowError
from ivr.flow.prompts import PromptLibrary
from ivr.store.protocol import CallStore


class UnknownFlow(LookupError):
    """No flow of that name is loaded."""


class FlowRegistry:
    log = Logger()

    def __init__(self, flows_dir, prompts_dir, store: CallStore | None = None):
        self.flows_dir = Path(flows_dir)
        self.prompts_dir = Path(prompts_dir)
        self.store = store
        #: Runs a store call off the reactor's thread and returns its
        #: Deferred (``ivr-serve`` sets it on PostgreSQL); None: at once.
        self.in_thread = None
        self._current: dict[str, Flow] = {}
        self._versions: dict[tuple[str, str], Flow] = {}
        self._fingerprint = None
        self.problems: dict[str, list] = {}  # file -> problems of its last failed load

    def current(self, name: str) -> Flow | None:
        """The version new calls to ``name`` start on."""
        return self._current.get(name)

    def version(self, name: str, version: str) -> Flow | None:
        """A given version of ``name``: in memory, else rebuilt from the log."""
        flow = self._versions.get((name, version))
        if flow is None and self.store is not None:
            stored = self.store.flow_version(name, version)
            if stored:
                flow = self._rebuild(name, stored)
        return flow

    def versions(self) -> dict[str, str]:
        """Flow name -> current version."""
        return {name: flow.version for name, flow in sorted(self._current.items())}

    def invalid_files(self) -> list[dict]:
        """Each flow file that failed its last load, sorted: its path, its
        first problem (``file:line:col: error: message [code]``), how many
        it has, and the version still serving in its place (None: none)."""
        return [{"file": path, "problem": str(problems[0]) if problems else "",
                 "problems": len(problems),
                 "serving": (self.versions().get(Path(path).stem))}
                for path, problems in sorted(self.problems.items())]

    def reload_if_changed(self) -> bool:
        """Reload when a flow or prompt file changed; True when it reloaded."""
        fingerprint = self._files_fingerprint()
        if fingerprint == self._fingerprint:
            return False
        self._fingerprint = fingerprint
        self.reload()
        return True

    def reload(self) -> None:
        """(Re)load every flow file; keep the last good version of any that fails."""
        seen = set()
        paths = sorted(self.flows_dir.glob("*.yaml"))
        for gone in set(self.problems) - {str(p) for p in paths}:
            del self.problems[gone]  # a removed file no longer fails
        for path in paths:
            try:
                flow = load_flow(path, self.prompts_dir)
            except FlowError as error:
                self.problems[str(path)] = error.problems
                for problem in error.problems:
                    self.log.error("flow not loaded: {problem}", problem=str(problem))
                previous = self._current.get(path.stem)
                if previous is not None:
                    seen.add(previous.name)
                    self.log.warn("{flow} keeps serving version {version}",
                                  flow=previous.name, version=previous.version)
                continue
            self.problems.pop(str(path), None)
            seen.add(flow.name)
            self._add(flow)
        for name in set(self._current) - seen:
            self.log.warn("{flow} removed: no new calls will start on it", flow=name)
            del self._current[name]

    def _add(self, flow: Flow) -> None:
        previous = self._current.get(flow.name)
        self._current[flow.name] = flow
        self._versions.setdefault((flow.name, flow.version), flow)
        self._keep_version(flow)
        if previous is None or previous.version != flow.version:
            self.log.info("{flow} version {version} loaded", flow=flow.name, version=flow.version)

    def _keep_version(self, flow: Flow) -> None:
        """Keep ``flow``'s sources in the store, for reports and for the
        processes that will meet its calls."""
        if self.store is None:
            return
        if self.in_thread is not None:
            self.in_thread(self.store.save_flow_version, flow).addErrback(
                self._version_not_kept, flow)
            return
        try:
            self.store.save_flow_version(flow)
        except Exception:  # noqa: BLE001 - the flow serves all the same
            self._version_not_kept(Failure(), flow)

    def _version_not_kept(self, failure: Failure, flow: Flow) -> None:
        self.log.error("{flow} version {version} not kept in the store ({error}): it serves "
                       "from memory and is kept at the next reload", flow=flow.name,
                       version=flow.version, error=failure.getErrorMessage())
        self._fingerprint = None  # the next tick reloads, and keeps it then

    def knows(self, name: str, version: str) -> bool:
        """Whether ``version`` of ``name`` is in memory (no store read to get it)."""
        return (name, version) in self._versions

    def _rebuild(self, name: str, stored: dict) -> Flow | None:
        sources = {tuple(key.split("/", 1)): text for key, text in stored["prompts"].items()}
        try:
            # Rehearsed when it was loaded; calls in progress must go on
            # with it, and its renders are still within their budget.
            flow = flow_from_source(f"{name}@{stored['version']}", stored["source"],
                                    PromptLibrary(self.prompts_dir, sources), rehearse=False)
        except FlowError as error:
            self.log.error("stored version {version} of {flow} no longer builds: {error}",
                           flow=name, version=stored["version"], error=str(error))
            return None
        self._versions[(name, flow.version)] = flow
        return flow

    def _files_fingerprint(self):
        files = list(self.flows_dir.glob("*.yaml")) + list(self.prompts_dir.rglob("*.j2"))
        result = []
        for path in sorted(files):
            try:
                stat = path.stat()
            except OSError:
                continue  # removed between listing and stat
            result.append((str(path), stat.st_mtime_ns, stat.st_size))
        return tuple(result)

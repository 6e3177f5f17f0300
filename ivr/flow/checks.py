"""The flow checks that need the whole flow: the graph of nodes, reasons,
look-ups and hours, expressions, prompts in every language, speech examples,
the sample renders and the recording notice."""

from __future__ import annotations

from ivr.flow import expressions, sample_calls, speech
from ivr.flow.fields import (
    LOOKUPS,
)
from ivr.flow.kinds import KINDS, targets
from ivr.flow.model import (
    Node,
)
from ivr.flow.problems import Problem
from ivr.flow.prompts import FIXED_SERVER_PROMPTS, SERVER_PROMPTS, PromptError
from ivr.flow.suggest import closest

#: The messages of the whole-flow checks that offer a fix, one sentence each.
MESSAGES = {
    "unknown-target": "{where} goes to unknown node {name!r}",
    "unknown-target-suggest": "{where} goes to unknown node {name!r}; did you mean {suggestion!r}?",
    "misplaced-node": "node {name!r} is not under 'nodes' but inside {inside}, so nothing can go "
                      "to it: indent it by 2 spaces, like the other nodes",
    "missing-prompt": "prompt {name!r} has no {lang} version: expected {expected}",
    "missing-prompt-suggest": "prompt {name!r} has no {lang} version: expected {expected}; did "
                              "you mean {suggestion!r}?",
}

#: What a failed render on sample data is, by ``PromptError.kind``; the
#: problem's code is ``prompt-<kind>``.
_RENDER_FAILURES = {
    "undefined": "reads a variable or field that is not there",
    "budget": "runs over its render budget",
    "unsafe": "reaches outside the sandbox",
    "error": "fails",
}


def _candidate_name(node: Node, candidate) -> str:
    if candidate == speech.ESCAPE:
        return "the escape to a human"
    return "choice " + _choice_name(node.opts["choices"][candidate], candidate)


def _choice_name(choice, index: int) -> str:
    return f"{index + 1} (key {choice.key})" if choice.key else str(index + 1)


def _describe(path) -> str:
    """``nodes.menu.choices.1.to`` → "node 'menu' (choices 2)"."""
    if len(path) >= 2 and path[0] == "nodes":
        rest = [str(p + 1) if isinstance(p, int) else p for p in path[2:-1]]
        detail = f" ({' '.join(rest)})" if rest else ""
        field_name = path[-1]
        return f"node {path[1]!r}{detail} '{field_name}'"
    return f"'{'.'.join(str(p) for p in path)}'"


def _value_at(data, path):
    for step in path:
        if not isinstance(data, (dict, list)):
            return None
        try:
            data = data[step]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _looks_like_node(value) -> bool:
    """A node moved out of 'nodes' by its indentation: a mapping with a
    'kind', or nothing (its fields then became its neighbours)."""
    return value is None or (isinstance(value, dict) and "kind" in value)


class _Checks:
    """Methods of the flow builder, :class:`ivr.flow.loader._Builder`."""

    def _check_examples(self, node, lang, matcher):
        """Each example must be taken, without a confirmation, by its own choice."""
        for i, choice in enumerate(node.opts.get("choices", ())):
            for j, example in enumerate(choice.examples.get(lang, ())):
                decision = matcher.decide(example, node.opts["speech"])
                if decision.verdict == "take" and decision.candidate == i:
                    continue
                path = ("nodes", node.name, "choices", i, "examples", lang, j)
                mine = f"example {example!r} ({lang}) of choice {_choice_name(choice, i)} of menu {node.name!r}"
                if decision.verdict == "take":
                    won = _candidate_name(node, decision.candidate)
                    self.problem(path, f"{mine} is taken by {won} ({decision.detail}): give the choices "
                                 "words that tell them apart", "example-mismatch")
                else:
                    what = "would be confirmed" if decision.verdict == "confirm" else "would not match"
                    self.problem(path, f"{mine} {what} ({decision.detail}; taken from score "
                                 f"{node.opts['speech'].accept:.2f} and margin {node.opts['speech'].margin:.2f}): "
                                 "add words that say it", "example-ambiguous")

    # -- whole-flow checks ---------------------------------------------------------
    def _check_graph(self, data, nodes, flow, settings):
        raw_nodes = data.get("nodes") if isinstance(data.get("nodes"), dict) else {}
        misplaced = self._misplaced_nodes(raw_nodes)
        self.nodes_broken = bool(misplaced or set(raw_nodes) - set(nodes))
        meant = set()  # the nodes misspelt targets were most likely meant to go to
        for path, node_name in self.targets:
            if node_name in misplaced:
                continue  # said once, where the node is
            if node_name not in raw_nodes:
                where = _describe(path)
                suggestion = closest(node_name, raw_nodes)
                meant.add(suggestion)
                message = MESSAGES["unknown-target-suggest" if suggestion else "unknown-target"].format(
                    where=where, name=node_name, suggestion=suggestion)
                self.problem(path, message, "unknown-target")
        human = data.get("human")
        if isinstance(human, str) and human in nodes and not KINDS[nodes[human].kind].stands_for_human:
            self.problem(("human",), f"'human' must name a transfer, callback, record or hours node; "
                         f"{human!r} is of kind {nodes[human].kind}", "wrong-value")
        for k in settings["escape"].keys:
            for node in nodes.values():
                for i, choice in enumerate(node.opts.get("choices", ())):
                    if choice.key == k:
                        self.problem(("nodes", node.name, "choices", i, "key"), f"key {k} of menu {node.name!r} "
                                     "is the flow's escape key to a human", "duplicate-key")
        if "start" not in data or not isinstance(data.get("start"), str) or not nodes:
            return
        if self.nodes_broken:
            # A node that is broken or out of place hides the ways through
            # it: what looks unreachable would only follow from that problem.
            return
        roots = [data["start"], data.get("human"), settings["escape"].to,
                 settings["no_input"].to, settings["no_match"].to, data.get("ask_reason")]
        reachable = set()
        pending = [r for r in roots if isinstance(r, str) and r in nodes]
        while pending:
            current = pending.pop()
            if current in reachable:
                continue
            reachable.add(current)
            pending.extend(t for t in targets(nodes[current]) if t in nodes)
        led_to = {t for node in nodes.values() for t in targets(node)} | set(roots) | meant
        broken_edges = any(name not in raw_nodes for _path, name in self.targets)
        for node_name in nodes:
            if node_name in reachable:
                continue
            if node_name not in led_to:
                self.problem(("nodes", node_name), f"node {node_name!r} is unreachable: no node "
                             "leads to it", "unreachable-node", at_key=True)
            elif not broken_edges:  # else it is cut off by the unknown target already reported
                self.problem(("nodes", node_name), f"node {node_name!r} is unreachable from "
                             f"start {data['start']!r}", "unreachable-node", at_key=True)

    def _misplaced_nodes(self, raw_nodes) -> set:
        """The nodes gone to but indented out of 'nodes' (inside another node,
        or at the top level): each is reported once, where it is, and the
        problems its misplacement causes inside its new parent are dropped."""
        wanted = {name for _path, name in self.targets if name not in raw_nodes}
        found: dict = {}
        for path in sorted(self.doc.keys, key=len):
            if (path and path[-1] in wanted and path[-1] not in found and path[:-1] != ("nodes",)
                    and _looks_like_node(_value_at(self.doc.data, path))
                    and not any(path[:len(outer)] == outer for outer in found.values())):
                found[path[-1]] = path
        for node_name, path in found.items():
            pos = self.doc.key_pos(path)
            parent = path[:-1]
            inside = (f"node {parent[1]!r}" if len(parent) >= 2 and parent[0] == "nodes"
                      else f"'{'.'.join(map(str, parent))}'" if parent else "the top level of the file")
            # Its fields may have landed in its new parent: the problems
            # there come from it too.
            self.problems[:] = [p for p in self.problems if not self._within(parent, p)
                                and (p.line, p.column) != (pos.line, pos.column)]
            self.problem(path, MESSAGES["misplaced-node"].format(name=node_name, inside=inside),
                         "misplaced-node", at_key=True)
        # The nodes that moved with it are out of place for the same reason.
        carried = {path[-1] for path in self.doc.keys for outer in found.values()
                   if len(path) > len(outer) and path[:len(outer)] == outer and path[-1] in wanted}
        return set(found) | carried

    def _within(self, parent, problem) -> bool:
        """Whether ``problem`` lies in the YAML block of ``parent`` (a path;
        the top level holds everything)."""
        if not parent:
            return False
        if problem.path != self.path:
            return False
        start = self.doc.key_pos(parent).line
        after = [pos.line for path, pos in self.doc.keys.items()
                 if len(path) <= len(parent) and pos.line > start]
        return start <= problem.line < min(after, default=10**9)

    def _check_reasons(self, reasons):
        used = set()
        for path, reason_name in self.reasons_used:
            used.add(reason_name)
            if reason_name not in reasons:
                self.problem(path, f"reason {reason_name!r} is not declared under 'reasons'",
                             "unknown-reason")
        for reason_name in reasons:
            if reason_name not in used and not self.nodes_broken:
                self.problem(("reasons", reason_name), f"reason {reason_name!r} is declared but no "
                             "node marks it", "unused-reason", at_key=True)

    def _check_ask_reason(self, data, nodes):
        """``ask_reason`` names a menu whose every choice marks a reason and
        leads to a person: the caller asked for one, and gets one."""
        asked = data.get("ask_reason")
        if not isinstance(asked, str) or asked not in nodes:
            return  # missing targets are reported as unknown-target
        node = nodes[asked]
        if node.kind != "menu":
            self.problem(("ask_reason",), f"'ask_reason' must name a menu whose choices mark reasons; "
                         f"{asked!r} is of kind {node.kind}", "wrong-value")
            return
        human = data.get("human")
        for i, choice in enumerate(node.opts.get("choices", ())):
            path = ("nodes", asked, "choices", i)
            if not choice.reason:
                self.problem(path, f"choice {i + 1} of the ask_reason menu {asked!r} marks no reason; "
                             "add 'reason: …' (the caller's answer is the call's reason)",
                             "missing-field")
            target_node = nodes.get(choice.to)
            if target_node is not None and choice.to != human and not KINDS[target_node.kind].stands_for_human:
                self.problem(path + ("to",), f"choice {i + 1} of the ask_reason menu {asked!r} goes to "
                             f"{choice.to!r}, a {target_node.kind}; expected the human or a transfer, "
                             "callback, record or hours node (the caller asked for a person)",
                             "wrong-value")

    def _check_lookups_and_hours(self, nodes, calendars):
        for node in nodes.values():
            path = ("nodes", node.name)
            if node.kind == "lookup":
                if node.opts.get("error") is None:
                    self.problem(path, f"look-up {node.name!r} has no 'error' branch: say where callers "
                                 "go when the back-end fails (usually the human)",
                                 "missing-error-branch", at_key=True)
                spec = LOOKUPS.get(node.opts.get("find"))
                if spec:
                    given = set(node.opts.get("with", {})) | set(spec["defaults"])
                    for missing in sorted(spec["args"] - given):
                        self.problem(path, f"look-up {node.name!r} needs 'with: {{{missing}: …}}'",
                                     "missing-field", at_key=True)
                    for extra in sorted(set(node.opts.get("with", {})) - spec["args"]):
                        self.problem(path + ("with", extra), f"look-up {node.opts['find']} takes no "
                                     f"argument {extra!r}", "unknown-field", at_key=True)
            if node.kind == "hours" and node.opts.get("calendar") not in calendars:
                self.problem(path + ("calendar",), f"calendar {node.opts.get('calendar')!r} is not "
                             "defined under 'hours'", "unknown-calendar")

    def _check_expressions(self, known):
        for path, source in self.expressions:
            try:
                used = expressions.variables(source)
            except expressions.ExpressionError as error:
                self.problem(path, f"invalid expression {source!r}: {error}", "expression-syntax")
                continue
            for variable in sorted(used - known):
                self.problem(path, f"expression uses unknown variable {variable!r}", "unknown-variable")

    def _check_prompts(self, languages, known):
        for path, lang in self.languages_used:
            if languages and lang not in languages:
                self.problem(path, f"language {lang!r} is not one of the flow's languages "
                             f"({', '.join(languages)})", "unknown-language")
        names = {}
        for path, prompt_name in self.prompt_refs:
            names.setdefault(prompt_name, path)
        checked = set()
        for prompt_name, path in names.items():
            for lang in languages:
                try:
                    expected = self.library.path(lang, prompt_name)
                except PromptError as error:
                    self.problem(path, f"invalid prompt name {prompt_name!r}: {error.message}",
                                 "wrong-value")
                    break
                if not self.library.exists(lang, prompt_name):
                    suggestion = closest(prompt_name, self.library.names(lang))
                    message = MESSAGES["missing-prompt-suggest" if suggestion else "missing-prompt"]
                    self.problem(path, message.format(name=prompt_name, lang=lang, expected=expected,
                                                      suggestion=suggestion), "missing-prompt")
                    continue
                if (lang, prompt_name) in checked:
                    continue
                checked.add((lang, prompt_name))
                try:
                    found = self.library.check(lang, prompt_name, known)
                except PromptError as error:
                    self.problem(path, str(error), "prompt-syntax")
                    continue
                for p in found:
                    self.problems.append(Problem(str(p.path), p.line, p.column, p.message, p.code))
        self._check_server_prompts(languages)
        available = [(lang, n) for n in list(names) + list(SERVER_PROMPTS) for lang in languages
                     if self.library.exists(lang, n)]
        return self.library.snapshot(available)

    def _check_server_prompts(self, languages):
        """The prompts the server says (on hold, the fail-safe, the agent's
        whisper) exist in each of the flow's languages, reading only what
        the server gives them."""
        for index, lang in enumerate(languages):
            for name, variables in SERVER_PROMPTS.items():
                if not self.library.exists(lang, name):
                    self.problem(("languages", index), f"prompt {name!r} has no {lang} version: "
                                 f"expected {self.library.path(lang, name)} (the server says it "
                                 f"during calls in {lang})", "missing-prompt")
                    continue
                try:
                    found = self.library.check(lang, name, variables)
                except PromptError as error:
                    self.problem(("languages", index), str(error), "prompt-syntax")
                    continue
                for p in found:
                    self.problems.append(Problem(str(p.path), p.line, p.column, p.message, p.code))

    def _server_says(self, prompt_set, languages) -> dict:
        """The server's fixed prompts, rendered now: a template that breaks
        later cannot silence the fail-safe."""
        says = {}
        for index, lang in enumerate(languages):
            for name in FIXED_SERVER_PROMPTS:
                if not prompt_set.exists(lang, name):
                    continue  # already a problem
                try:
                    says.setdefault(lang, {})[name] = prompt_set.render(lang, name, {})
                except PromptError as error:
                    self.problem(("languages", index), str(error), "prompt-render")
        return says

    def _check_sample_renders(self, flow):
        """Render every prompt on sample data (``ivr.flow.sample_calls``): a
        template that fails, reads what is not there or runs over its
        budget would fail a live call; so would an expression."""
        # A node nothing leads to is one the engine enters by itself.
        led_to = {target for node in flow.nodes.values() for target in targets(node)}
        for finding in sample_calls.rehearse(flow, [n for n in flow.nodes if n not in led_to]):
            if isinstance(finding, sample_calls.ExpressionFinding):
                self.problem(finding.path, f"expression {finding.source!r} "
                             f"{_RENDER_FAILURES[finding.kind]} when node {finding.node!r} runs it "
                             f"(sample: {finding.sample}): {finding.message}",
                             f"expression-{finding.kind}")
                continue
            error = finding.error
            node = flow.nodes[finding.node]
            message = (f"{_RENDER_FAILURES[error.kind]} when node {finding.node!r} "
                       f"({self.path}:{node.line}) says it ({finding.lang}, sample: "
                       f"{finding.sample}): {error.message}")
            self.problems.append(Problem(str(self.library.path(finding.lang, finding.prompt)),
                                         error.line or 1, 1, message, f"prompt-{error.kind}"))

    def _check_recording_notice(self, data, nodes, settings, languages):
        """A ``record`` node must tell callers they are recorded: its own
        prompt says so, or a prompt of every node that leads to it does; a
        prompt that does is marked ``{# notice: recording #}`` in every
        language.  A warning: the flow still loads."""
        implicit = {data.get("human"), settings["escape"].to,
                    settings["no_input"].to, settings["no_match"].to}

        def gives_notice(node):
            return any(item.kind == "prompt" and all(
                self.library.is_notice(lang, item.value) for lang in languages)
                for item in node.say)

        for node in nodes.values():
            if node.kind != "record" or gives_notice(node):
                continue
            before = [n for n in nodes.values() if node.name in set(targets(n))]
            if node.name in implicit or not before or not all(map(gives_notice, before)):
                self.warnings.append(self._problem_at(
                    ("nodes", node.name), f"record node {node.name!r} is not preceded by a notice "
                    "that the message is recorded: say it in its prompt (or in one of every node "
                    "that leads to it) and mark that template {# notice: recording #}",
                    "recording-notice", "warning"))

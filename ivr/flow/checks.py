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
from ivr.i18n import N_, _

#: The messages of the whole-flow checks that offer a fix, one sentence each.
MESSAGES = {
    "unknown-target": N_("{where} goes to unknown node {name!r}"),
    "unknown-target-suggest": N_("{where} goes to unknown node {name!r}; did you mean {suggestion!r}?"),
    "misplaced-node": N_("node {name!r} is not under 'nodes' but inside {inside}, so nothing can go "
                      "to it: indent it by 2 spaces, like the other nodes"),
    "missing-prompt": N_("prompt {name!r} has no {lang} version: expected {expected}"),
    "missing-prompt-suggest": N_("prompt {name!r} has no {lang} version: expected {expected}; did "
                              "you mean {suggestion!r}?"),
    "missing-server-prompt": N_("prompt {name!r} has no {lang} version: expected {expected} (the "
                                "server says it during calls in {lang})"),
    "example-taken": N_("example {example!r} ({lang}) of {choice} of menu {menu!r} is taken by "
                        "{won} ({detail}): give the choices words that tell them apart"),
    "example-confirmed": N_("example {example!r} ({lang}) of {choice} of menu {menu!r} would be "
                            "confirmed ({detail}; taken from score {accept} and margin {margin}): add "
                            "words that say it"),
    "example-unmatched": N_("example {example!r} ({lang}) of {choice} of menu {menu!r} would not "
                            "match ({detail}; taken from score {accept} and margin {margin}): add words "
                            "that say it"),
    "choice-escape": N_("the escape to a human"),
    "choice-key": N_("choice {number} (key {key})"),
    "choice": N_("choice {number}"),
    "human-kind": N_("'human' must name a transfer, callback, record or hours node; {human!r} is of "
                     "kind {kind}"),
    "escape-key": N_("key {key} of menu {menu!r} is the flow's escape key to a human"),
    "unreachable": N_("node {name!r} is unreachable: no node leads to it"),
    "unreachable-from-start": N_("node {name!r} is unreachable from start {start!r}"),
    "inside-node": N_("node {name!r}"),
    # Translators: {detail} is the path inside the node, e.g. " (choices 2)", or nothing.
    "where-node": N_("node {name!r}{detail} '{field}'"),
    "inside-top-level": N_("the top level of the file"),
    "unknown-reason": N_("reason {name!r} is not declared under 'reasons'"),
    "unused-reason": N_("reason {name!r} is declared but no node marks it"),
    "ask-reason-kind": N_("'ask_reason' must name a menu whose choices mark reasons; {asked!r} is of "
                          "kind {kind}"),
    "ask-reason-no-reason": N_("choice {number} of the ask_reason menu {asked!r} marks no reason; add "
                               "'reason: …' (the caller's answer is the call's reason)"),
    "ask-reason-target": N_("choice {number} of the ask_reason menu {asked!r} goes to {to!r}, a {kind}; "
                            "expected the human or a transfer, callback, record or hours node (the "
                            "caller asked for a person)"),
    "lookup-no-error": N_("look-up {name!r} has no 'error' branch: say where callers go when the "
                          "back-end fails (usually the human)"),
    "lookup-missing-argument": N_("look-up {name!r} needs 'with: {{{missing}: …}}'"),
    "lookup-extra-argument": N_("look-up {find} takes no argument {extra!r}"),
    "unknown-calendar": N_("calendar {calendar!r} is not defined under 'hours'"),
    "expression-syntax": N_("invalid expression {source!r}: {error}"),
    "expression-variable": N_("expression uses unknown variable {variable!r}"),
    "unknown-language": N_("language {lang!r} is not one of the flow's languages ({languages})"),
    "invalid-prompt-name": N_("invalid prompt name {name!r}: {error}"),
    "expression-fails": N_("expression {source!r} {failure} when node {node!r} runs it (sample: "
                           "{sample}): {error}"),
    "prompt-fails": N_("{failure} when node {node!r} ({where}) says it ({lang}, sample: {sample}): "
                       "{error}"),
    "recording-notice": N_("record node {name!r} is not preceded by a notice that the message is "
                           "recorded: say it in its prompt (or in one of every node that leads to it) "
                           "and mark that template {{# notice: recording #}}"),
}

#: What a failed render on sample data is, by ``PromptError.kind``; the
#: problem's code is ``prompt-<kind>``.
_RENDER_FAILURES = {
    "undefined": N_("reads a variable or field that is not there"),
    "budget": N_("runs over its render budget"),
    "unsafe": N_("reaches outside the sandbox"),
    "error": N_("fails"),
}


def _candidate_name(node: Node, candidate) -> str:
    if candidate == speech.ESCAPE:
        return _(MESSAGES["choice-escape"])
    return _choice_name(node.opts["choices"][candidate], candidate)


def _choice_name(choice, index: int) -> str:
    """"choice 2 (key 3)", "choice 2": how a problem names a menu's choice."""
    if choice.key:
        return _(MESSAGES["choice-key"]).format(number=index + 1, key=choice.key)
    return _(MESSAGES["choice"]).format(number=index + 1)


def _describe(path) -> str:
    """``nodes.menu.choices.1.to`` → "node 'menu' (choices 2)"."""
    if len(path) >= 2 and path[0] == "nodes":
        rest = [str(p + 1) if isinstance(p, int) else p for p in path[2:-1]]
        detail = f" ({' '.join(rest)})" if rest else ""
        field_name = path[-1]
        return _(MESSAGES["where-node"]).format(name=path[1], detail=detail, field=field_name)
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
                mine = {"example": example, "lang": lang, "choice": _choice_name(choice, i),
                        "menu": node.name, "detail": decision.detail}
                if decision.verdict == "take":
                    won = _candidate_name(node, decision.candidate)
                    self.problem(path, _(MESSAGES["example-taken"]).format(won=won, **mine), "example-mismatch")
                else:
                    key = "example-confirmed" if decision.verdict == "confirm" else "example-unmatched"
                    self.problem(path, _(MESSAGES[key]).format(
                        accept=f"{node.opts['speech'].accept:.2f}", margin=f"{node.opts['speech'].margin:.2f}",
                        **mine), "example-ambiguous")

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
                message = _(MESSAGES["unknown-target-suggest" if suggestion else "unknown-target"]).format(
                    where=where, name=node_name, suggestion=suggestion)
                self.problem(path, message, "unknown-target")
        human = data.get("human")
        if isinstance(human, str) and human in nodes and not KINDS[nodes[human].kind].stands_for_human:
            self.problem(("human",), _(MESSAGES["human-kind"]).format(human=human, kind=nodes[human].kind),
                         "wrong-value")
        for k in settings["escape"].keys:
            for node in nodes.values():
                for i, choice in enumerate(node.opts.get("choices", ())):
                    if choice.key == k:
                        self.problem(("nodes", node.name, "choices", i, "key"),
                                     _(MESSAGES["escape-key"]).format(key=k, menu=node.name), "duplicate-key")
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
                self.problem(("nodes", node_name), _(MESSAGES["unreachable"]).format(name=node_name),
                             "unreachable-node", at_key=True)
            elif not broken_edges:  # else it is cut off by the unknown target already reported
                self.problem(("nodes", node_name), _(MESSAGES["unreachable-from-start"]).format(
                    name=node_name, start=data["start"]), "unreachable-node", at_key=True)

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
            inside = (_(MESSAGES["inside-node"]).format(name=parent[1]) if len(parent) >= 2 and parent[0] == "nodes"
                      else f"'{'.'.join(map(str, parent))}'" if parent else _(MESSAGES["inside-top-level"]))
            # Its fields may have landed in its new parent: the problems
            # there come from it too.
            self.problems[:] = [p for p in self.problems if not self._within(parent, p)
                                and (p.line, p.column) != (pos.line, pos.column)]
            self.problem(path, _(MESSAGES["misplaced-node"]).format(name=node_name, inside=inside),
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
                self.problem(path, _(MESSAGES["unknown-reason"]).format(name=reason_name), "unknown-reason")
        for reason_name in reasons:
            if reason_name not in used and not self.nodes_broken:
                self.problem(("reasons", reason_name), _(MESSAGES["unused-reason"]).format(name=reason_name),
                             "unused-reason", at_key=True)

    def _check_ask_reason(self, data, nodes):
        """``ask_reason`` names a menu whose every choice marks a reason and
        leads to a person: the caller asked for one, and gets one."""
        asked = data.get("ask_reason")
        if not isinstance(asked, str) or asked not in nodes:
            return  # missing targets are reported as unknown-target
        node = nodes[asked]
        if node.kind != "menu":
            self.problem(("ask_reason",), _(MESSAGES["ask-reason-kind"]).format(asked=asked, kind=node.kind),
                         "wrong-value")
            return
        human = data.get("human")
        for i, choice in enumerate(node.opts.get("choices", ())):
            path = ("nodes", asked, "choices", i)
            if not choice.reason:
                self.problem(path, _(MESSAGES["ask-reason-no-reason"]).format(number=i + 1, asked=asked),
                             "missing-field")
            target_node = nodes.get(choice.to)
            if target_node is not None and choice.to != human and not KINDS[target_node.kind].stands_for_human:
                self.problem(path + ("to",), _(MESSAGES["ask-reason-target"]).format(
                    number=i + 1, asked=asked, to=choice.to, kind=target_node.kind), "wrong-value")

    def _check_lookups_and_hours(self, nodes, calendars):
        for node in nodes.values():
            path = ("nodes", node.name)
            if node.kind == "lookup":
                if node.opts.get("error") is None:
                    self.problem(path, _(MESSAGES["lookup-no-error"]).format(name=node.name),
                                 "missing-error-branch", at_key=True)
                spec = LOOKUPS.get(node.opts.get("find"))
                if spec:
                    given = set(node.opts.get("with", {})) | set(spec["defaults"])
                    for missing in sorted(spec["args"] - given):
                        self.problem(path, _(MESSAGES["lookup-missing-argument"]).format(
                            name=node.name, missing=missing), "missing-field", at_key=True)
                    for extra in sorted(set(node.opts.get("with", {})) - spec["args"]):
                        self.problem(path + ("with", extra), _(MESSAGES["lookup-extra-argument"]).format(
                            find=node.opts["find"], extra=extra), "unknown-field", at_key=True)
            if node.kind == "hours" and node.opts.get("calendar") not in calendars:
                self.problem(path + ("calendar",), _(MESSAGES["unknown-calendar"]).format(
                    calendar=node.opts.get("calendar")), "unknown-calendar")

    def _check_expressions(self, known):
        for path, source in self.expressions:
            try:
                used = expressions.variables(source)
            except expressions.ExpressionError as error:
                self.problem(path, _(MESSAGES["expression-syntax"]).format(source=source, error=error),
                             "expression-syntax")
                continue
            for variable in sorted(used - known):
                self.problem(path, _(MESSAGES["expression-variable"]).format(variable=variable),
                             "unknown-variable")

    def _check_prompts(self, languages, known):
        for path, lang in self.languages_used:
            if languages and lang not in languages:
                self.problem(path, _(MESSAGES["unknown-language"]).format(lang=lang, languages=", ".join(languages)),
                             "unknown-language")
        names = {}
        for path, prompt_name in self.prompt_refs:
            names.setdefault(prompt_name, path)
        checked = set()
        for prompt_name, path in names.items():
            for lang in languages:
                try:
                    expected = self.library.path(lang, prompt_name)
                except PromptError as error:
                    self.problem(path, _(MESSAGES["invalid-prompt-name"]).format(
                        name=prompt_name, error=error.message), "wrong-value")
                    break
                if not self.library.exists(lang, prompt_name):
                    suggestion = closest(prompt_name, self.library.names(lang))
                    message = _(MESSAGES["missing-prompt-suggest" if suggestion else "missing-prompt"])
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
                    self.problem(("languages", index), _(MESSAGES["missing-server-prompt"]).format(
                        name=name, lang=lang, expected=self.library.path(lang, name)), "missing-prompt")
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
                self.problem(finding.path, _(MESSAGES["expression-fails"]).format(
                    source=finding.source, failure=_(_RENDER_FAILURES[finding.kind]), node=finding.node,
                    sample=finding.sample, error=finding.message), f"expression-{finding.kind}")
                continue
            error = finding.error
            node = flow.nodes[finding.node]
            message = _(MESSAGES["prompt-fails"]).format(
                failure=_(_RENDER_FAILURES[error.kind]), node=finding.node, where=f"{self.path}:{node.line}",
                lang=finding.lang, sample=finding.sample, error=error.message)
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
                    ("nodes", node.name), _(MESSAGES["recording-notice"]).format(name=node.name),
                    "recording-notice", "warning"))

"""Load YAML into plain Python data while remembering where every value was.

PyYAML's composer keeps a mark (0-based line and column) on every node; the
constructor throws them away.  We walk the composed node tree ourselves,
build ordinary dicts, lists and scalars, and record each value's position
under its path (a tuple of mapping keys and list indices).  Positions are
stored 1-based: the conversion happens here, once, at the boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from ivr.flow import yamlsyntax

Path = tuple  # a tuple of str keys and int indices


@dataclass(frozen=True)
class Pos:
    line: int
    column: int


@dataclass
class Document:
    """Parsed YAML data plus the position of every value and mapping key."""

    data: object
    values: dict = field(default_factory=dict)
    keys: dict = field(default_factory=dict)
    #: (path, where it is given again, where it was first given) per repeated key.
    duplicates: list = field(default_factory=list)
    #: The text as written of the scalars YAML read as something other than
    #: text (``yes`` for True, ``~`` for None), by path.
    spelled: dict = field(default_factory=dict)

    def pos(self, path: Path) -> Pos:
        """Where the value at ``path`` starts, or its nearest located parent."""
        path = tuple(path)
        while path:
            if path in self.values:
                return self.values[path]
            path = path[:-1]
        return self.values.get((), Pos(1, 1))

    def key_pos(self, path: Path) -> Pos:
        """Where the mapping key naming ``path`` starts (falls back to the value)."""
        return self.keys.get(tuple(path)) or self.pos(path)


class YamlSyntaxError(Exception):
    """The text is not valid YAML; ``pos`` says where the (first) cause is
    and ``message`` what it is (see :mod:`ivr.flow.yamlsyntax`).
    ``problems`` lists every mistake found, each as (message, pos), and
    ``document`` is the text read past them (its indentation mistakes
    corrected as they were most likely meant), or None when it could not
    be read past the first."""

    def __init__(self, problems: list[tuple[str, Pos]], document: Document | None = None):
        message, pos = problems[0]
        super().__init__(message)
        self.message, self.pos = message, pos
        self.problems, self.document = problems, document


#: Mistakes of indentation read past in one text before giving up.
MAX_REPAIRS = 20


def _pos(mark) -> Pos:
    return Pos(mark.line + 1, mark.column + 1)


def load(text: str) -> Document:
    """Parse ``text`` (one YAML document) and return a :class:`Document`.

    Raises :class:`YamlSyntaxError` for text that is not YAML, with every
    mistake of indentation (a tab, a line too deep or too shallow) found
    by re-indenting each as it was most likely meant and reading on.
    """
    found: list[yamlsyntax.Explanation] = []
    current = text
    for _attempt in range(MAX_REPAIRS + 1):
        try:
            doc = _parse(current)
        except yaml.MarkedYAMLError as error:
            explanation = yamlsyntax.explain(current, error)
            if any(e.line == explanation.line for e in found):
                break  # the same line again: the correction did not help
            found.append(explanation)
            current = yamlsyntax.repaired(current, explanation)
            if current is None:
                break
            continue
        if not found:
            return doc
        raise YamlSyntaxError(_problems(found), doc)
    raise YamlSyntaxError(_problems(found))


def _problems(found) -> list[tuple[str, Pos]]:
    return [(e.message, Pos(e.line, e.column)) for e in found]


def _parse(text: str) -> Document:
    loader = yaml.SafeLoader(text)
    doc = Document(data=None)
    try:
        root = loader.get_single_node()
        if root is not None:
            doc.data = _build(root, (), doc, loader)
    finally:
        loader.dispose()
    return doc


def _build(node, path: Path, doc: Document, loader):
    doc.values[path] = _pos(node.start_mark)
    if isinstance(node, yaml.MappingNode):
        result = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node, loader)
            child = path + (key,)
            if key in result:
                doc.duplicates.append((child, _pos(key_node.start_mark), doc.keys[child]))
            doc.keys[child] = _pos(key_node.start_mark)
            result[key] = _build(value_node, child, doc, loader)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, path + (i,), doc, loader) for i, item in enumerate(node.value)]
    return _scalar(node, loader, path, doc)


def _scalar(node, loader, path: Path | None = None, doc: Document | None = None):
    if not isinstance(node, yaml.ScalarNode):
        # A list or mapping used as a mapping key: keep something printable.
        return str(loader.construct_object(node, deep=True))
    value = loader.construct_object(node)
    if doc is not None and (value is None or isinstance(value, bool)) and node.value:
        doc.spelled[path] = node.value
    return value

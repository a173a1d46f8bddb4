"""YAML for the operator's files with bounds on what a small text can cost.

``yaml.safe_load`` constructs nothing dangerous, but two shapes still exhaust a process: aliases
that refer to aliases ("billion laughs": 1 KB of text standing for a thousand million values,
which validation then walks one by one) and nesting deep enough to overflow the composer's
recursion (a ``RecursionError``, not a ``YAMLError``, so no caller reported it as a bad file).
``BoundedLoader`` refuses both with a ``yaml.YAMLError`` that says where, which every parser
of a file already turns into its own error type.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, SequenceNode

# Far deeper than any of our files (a directory is four levels), far shallower than the stack.
MAX_DEPTH = 64
# Values of a document with its aliases expanded: a directory of 10,000 managers is ~300,000.
MAX_EXPANDED_NODES = 2_000_000


class BoundedLoaderMixin:
    """Put before ``yaml.SafeLoader`` (or a subclass of it) in the bases."""

    _depth = 0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A date YAML recognises but Python cannot hold (0000-00-00, 2026-02-30) raised a bare
        # ValueError that no caller reported as a bad file: a YAMLError that says where.
        cls.add_constructor(_TIMESTAMP, _checked_timestamp)  # type: ignore[attr-defined]

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[attr-defined]
                raise ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
            return super().compose_node(parent, index)  # type: ignore[misc, no-any-return]
        finally:
            self._depth -= 1

    def construct_document(self, node: Node) -> Any:
        expanded = _expanded_size(node)
        if expanded > MAX_EXPANDED_NODES:
            raise ComposerError(
                None,
                None,
                f"aliases expand to over {MAX_EXPANDED_NODES} values",
                node.start_mark,
            )
        return super().construct_document(node)  # type: ignore[misc]


_TIMESTAMP = "tag:yaml.org,2002:timestamp"


def _checked_timestamp(loader: yaml.SafeLoader, node: Node) -> Any:
    try:
        return loader.construct_yaml_timestamp(node)  # type: ignore[arg-type]
    except (ValueError, OverflowError) as exc:
        raise ConstructorError(
            None, None, f"{node.value!r} is not a valid date or time ({exc})", node.start_mark
        ) from None


class BoundedLoader(BoundedLoaderMixin, yaml.SafeLoader):
    """``yaml.SafeLoader`` with the bounds above."""


def safe_load(text: str) -> Any:
    """``yaml.safe_load`` with the bounds above."""
    return yaml.load(text, Loader=BoundedLoader)  # noqa: S506 - a SafeLoader subclass


def _expanded_size(root: Node) -> int:
    """How many values the document stands for once every alias is replaced by what it names;
    ``MAX_EXPANDED_NODES + 1`` for a document that contains itself. Each node is sized once
    (an alias is the same node object as its anchor), so this costs the text's size, not the
    expansion's."""
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()

    def size(node: Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        if id(node) in in_progress:  # a recursive alias: infinite once expanded
            return MAX_EXPANDED_NODES + 1
        in_progress.add(id(node))
        total = 1
        if isinstance(node, SequenceNode):
            children: list[Node] = list(node.value)
        elif isinstance(node, MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = []
        for child in children:
            total += size(child)
            if total > MAX_EXPANDED_NODES:
                break
        in_progress.discard(id(node))
        sizes[id(node)] = total
        return total

    # Depth is bounded by MAX_DEPTH (plus the few levels of merge keys), so recursion is safe.
    return size(root)


def yaml_problem(error: yaml.YAMLError) -> str:
    """One line, where and what (``line 3: found character '\\t'...``), without PyYAML's
    excerpt of the file: a file may hold secrets, and an excerpt spans several lines."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or type(error).__name__
    return f"line {mark.line + 1}: {problem}" if mark is not None else str(problem)

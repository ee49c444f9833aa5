"""Safe YAML reading for user files, stricter than ``yaml.safe_load``.

``safe_load`` keeps the last of two equal keys (``size: 1 MiB, size: 2 MiB``) and follows aliases wherever they
lead: a recursive one (``&d [*d]``) builds a cycle, and a "billion laughs" (anchors of anchors) a document of 10^9
nodes that only blows up when it is written out. Deep nesting overflows Python's stack. Here each of those is a
:class:`GpusimError` when the file is loaded, naming the key path; the limits are far above any real scenario.
So are a key that is neither text nor a number (a date: results.json could not echo it) and an integer of over
100 digits (Python refuses to read one of 4300).
"""
from __future__ import annotations

from pathlib import Path

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from gpusim.errors import GpusimError

MAX_DEPTH = 64                  # nested mappings and lists, aliases expanded
MAX_ALIAS_NODES = 1_000_000     # nodes aliases (*name) add to the document once expanded
_MERGE = "tag:yaml.org,2002:merge"


def read_text(path: str | Path, field: str = "") -> str:
    """The UTF-8 text of a user file (a BOM is allowed), or an error naming ``field`` and the file."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise GpusimError(field, f"cannot read '{path}': {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise GpusimError(field, f"'{path}' is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                                 f"{exc.start}); save it as UTF-8") from None


def load(text: str, where: str, path: str = ""):
    """Parse YAML ``text`` with the checks of the module docstring. ``where`` names the file in messages (YAML
    syntax errors carry its line and column); ``path`` is the field the document sits at ("" for a whole file)."""
    loader = _StrictLoader(text, where, path)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise GpusimError(*_at(path, where, f"not valid YAML{at}: {getattr(exc, 'problem', None) or exc}")) from None
    except RecursionError:    # a limit above was not enough for this Python's stack
        raise GpusimError(*_at(path, where, "nested too deeply")) from None
    finally:
        loader.dispose()


def _at(path: str, where: str, message: str) -> tuple[str, str]:
    """(path, message) of an error about the whole document: the file named once, by ``path`` ('x.yaml:') when it
    already holds it, else in the message."""
    return (path.rstrip(":"), message) if path.endswith(":") else (path, f"{where}: {message}")


def _join(path: str, key) -> str:
    """``path.key``; a root ending in ':' (a file, ``x.yaml:``) takes the key as ``x.yaml:key``."""
    return f"{path}{key}" if path.endswith(":") else f"{path}.{key}" if path else str(key)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader refusing duplicate keys, recursive aliases, deep nesting and alias expansion past the limits."""

    def __init__(self, text: str, where: str, field_root: str = ""):
        super().__init__(text)
        self.where, self.field_root = where, field_root
        self._depth = 0

    def compose_node(self, parent, index):
        depth = self._depth
        if depth >= MAX_DEPTH:
            mark = self.peek_event().start_mark
            raise GpusimError(*_at(self.field_root, self.where, f"nested deeper than {MAX_DEPTH} levels at line "
                                                                 f"{mark.line + 1}"))
        self._depth = depth + 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth = depth

    def construct_document(self, node):
        self._paths: dict[int, str] = {}       # id(node) -> the first key path it sits at
        self._sizes: dict[int, tuple[int, int]] = {}
        _, size = self._measure(node, self.field_root, 0, set())
        extra = size - len(self._sizes)
        if extra > MAX_ALIAS_NODES:
            raise GpusimError(*_at(self.field_root, self.where, f"aliases (*name) expand the document by {extra} "
                                                                 f"nodes; the limit is {MAX_ALIAS_NODES}"))
        return super().construct_document(node)

    def _measure(self, node, path: str, depth: int, stack: set) -> tuple[int, int]:
        """(height, node count) of ``node`` with aliases expanded, memoised per node; refuses a node inside
        itself (a recursive alias) and a height past MAX_DEPTH (aliases can nest what the text did not)."""
        key = id(node)
        if key in stack:
            raise GpusimError(path, f"a recursive alias (line {node.start_mark.line + 1}): the node contains itself")
        if key not in self._sizes:
            if depth >= MAX_DEPTH:
                raise GpusimError(path, f"nested deeper than {MAX_DEPTH} levels once aliases are expanded")
            stack.add(key)
            self._paths.setdefault(key, path)
            height, size = 0, 1
            if isinstance(node, SequenceNode):
                children = [(v, f"{path}[{i}]") for i, v in enumerate(node.value)]
            elif isinstance(node, MappingNode):
                children = [c for k, v in node.value
                            for c in ((k, path), (v, _join(path, k.value if isinstance(k, ScalarNode) else "?")))]
            else:
                children = []
            for child, child_path in children:
                h, s = self._measure(child, child_path, depth + 1, stack)
                height, size = max(height, h + 1), size + s
            stack.discard(key)
            self._sizes[key] = (height, size)
        height, size = self._sizes[key]
        if depth + height >= MAX_DEPTH:
            raise GpusimError(path, f"nested deeper than {MAX_DEPTH} levels once aliases are expanded")
        return height, size

    def construct_mapping(self, node, deep=False):
        """A key given twice in one mapping is an error (a merge ``<<: *base`` may still be overridden)."""
        if isinstance(node, MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE:
                    continue
                key = self.construct_object(key_node, deep=True)
                if not isinstance(key, (str, int, float, type(None))):     # a date or bytes key: no JSON echo
                    raise GpusimError(_join(self._paths.get(id(node), self.field_root), key),
                                      f"a key must be text or a number, got {type(key).__name__}")
                first = seen.setdefault(key, key_node)
                if first is not key_node:
                    raise GpusimError(_join(self._paths.get(id(node), self.field_root), key),
                                      f"given twice (lines {first.start_mark.line + 1} and "
                                      f"{key_node.start_mark.line + 1}); give each key once")
        return super().construct_mapping(node, deep)

    def construct_yaml_int(self, node):
        """An integer of up to 100 digits (Python refuses to read past 4300 with a ValueError)."""
        if len(node.value) > 100:
            raise GpusimError(self._paths.get(id(node), self.field_root),
                              f"a number of {len(node.value)} digits; give one of at most 100")
        return super().construct_yaml_int(node)


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)

"""The one YAML reader for study files and run directories: plain data, YAML 1.2 scalars, bounded.

Study files and a run directory's `study.yaml` may come from anyone, so reading one must never
run code, take unbounded time or memory, or read a value differently than its author meant:

* plain data only (a safe loader: no `!!python` tags);
* YAML 1.2 core scalars: `yes`/`no`/`on`/`off` are strings (YAML 1.1 made them booleans),
  `1_000`, `1:20` and dates are strings; a zero-padded integer such as `007` is refused with a
  hint, because YAML 1.1 readers take `010` for octal 8 and YAML 1.2 readers for 10;
* merge keys (`<<: *base`) work; keys must be strings and appear once;
* bounded: at most `MAX_BYTES` of text, `MAX_DEPTH` levels of nesting and `MAX_NODES` values
  once aliases are expanded (a "billion laughs" file is refused before it is built), and no
  alias may contain itself.

Every problem is a `UserError` naming the place (file, line, column) with a hint.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import BaseResolver

from orchestrator.errors import UserError

MAX_BYTES = 1 << 20  # a study file is a few kilobytes
MAX_DEPTH = 32
MAX_NODES = 100_000
MAX_DIGITS = 40  # Python refuses to parse integers of more than 4300 digits; seeds fit in 20

STR, INT, FLOAT, BOOL, NULL = (f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null"))
MERGE = "tag:yaml.org,2002:merge"
PADDED = "tag:decaylab,2026:zero-padded-int"


class _Resolver(BaseResolver):
    """YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1032-tag-resolution), plus merge keys and the
    zero-padded integers that YAML 1.1 and 1.2 read differently."""


_Resolver.yaml_implicit_resolvers = {}
for _tag, _pattern, _first in (
    (NULL, r"~|null|Null|NULL|", ["~", "n", "N", ""]),
    (BOOL, r"true|True|TRUE|false|False|FALSE", list("tTfF")),
    (PADDED, r"[-+]?0[0-9]+", list("-+0")),
    (INT, r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+", list("-+0123456789")),
    (FLOAT, r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)",
     list("-+.0123456789")),
    (MERGE, r"<<", ["<"]),
):
    _Resolver.add_implicit_resolver(_tag, re.compile(rf"^(?:{_pattern})$"), _first)


class TooComplex(Exception):
    def __init__(self, reason: str, node: Node | None = None, mark=None):
        super().__init__(reason)
        self.reason, self.mark = reason, mark or (node.start_mark if node is not None else None)


class _Composer(Composer):
    """Refuses nesting deeper than MAX_DEPTH while composing (PyYAML's composer recurses)."""

    def compose_node(self, parent, index):
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_DEPTH:
                raise TooComplex(f"nested more than {MAX_DEPTH} levels deep", mark=self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _Constructor(SafeConstructor):
    def construct_yaml_int(self, node: ScalarNode) -> int:
        text = node.value
        if len(text) > MAX_DIGITS:
            raise TooComplex(f"a number of {len(text)} digits", node)
        if text.startswith(("0o", "0x")):
            return int(text[2:], 8 if text[1] == "o" else 16)
        return int(text)

    def construct_yaml_float(self, node: ScalarNode) -> float:
        text = node.value.lower().replace(".inf", "inf").replace(".nan", "nan")
        return float(text)

    def construct_padded(self, node: ScalarNode) -> Any:
        raise ConstructorError(None, None, f"{node.value!r} is a zero-padded number, which YAML readers disagree "
                               "on (octal or decimal)", node.start_mark)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            if key_node.tag == MERGE:
                continue  # merged keys may be overridden: only keys written here must be unique
            if not isinstance(key_node, ScalarNode):
                raise ConstructorError(None, None, "a key is a list or a mapping", key_node.start_mark)
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str):
                raise ConstructorError(None, None, f"the key {key!r} is not a string", key_node.start_mark)
            if key in seen:
                raise ConstructorError(None, None, f"key {key!r} appears twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# plain data only: any other tag (!!python/..., !!binary, !!set, !!timestamp) is an error
_Constructor.yaml_constructors = {tag: SafeConstructor.yaml_constructors[tag] for tag in
                                  (NULL, BOOL, STR, "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map", None)}
_Constructor.add_constructor(INT, _Constructor.construct_yaml_int)
_Constructor.add_constructor(FLOAT, _Constructor.construct_yaml_float)
_Constructor.add_constructor(PADDED, _Constructor.construct_padded)


class _Loader(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser, _Composer, _Constructor, _Resolver):
    def __init__(self, stream):
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        _Composer.__init__(self)
        _Constructor.__init__(self)
        _Resolver.__init__(self)


class _Dumper(yaml.SafeDumper):
    """Quotes every string the reader would not read back as that string (`on`, `007`, `1e3`)."""


_Dumper.yaml_implicit_resolvers = _Resolver.yaml_implicit_resolvers


def check_size(root: Node) -> None:
    """Refuse a document whose aliases expand beyond MAX_NODES values or MAX_DEPTH levels, or that
    contains itself, by walking the composed graph once (each node's expanded size memoised)."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()

    def walk(node: Node, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise TooComplex(f"nested more than {MAX_DEPTH} levels deep once its aliases are expanded", node)
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in open_:
            raise TooComplex("an alias refers to a value that contains it (a recursive alias)", node)
        if isinstance(node, ScalarNode):
            return 1
        open_.add(id(node))
        children = node.value if isinstance(node, SequenceNode) else [n for kv in node.value for n in kv]
        total = 1
        for child in children:
            total += walk(child, depth + 1)
            if total > MAX_NODES:
                raise TooComplex(f"more than {MAX_NODES:,} values once its aliases are expanded", node)
        open_.discard(id(node))
        sizes[id(node)] = total
        return total

    walk(root, 0)


def read_bounded(path: Path, where: str) -> bytes:
    """A file's bytes, refusing one larger than MAX_BYTES without reading it all (a device, a log)."""
    with open(path, "rb") as f:
        data = f.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise UserError(where, f"larger than {MAX_BYTES:,} bytes: too large for a study file",
                        "a study file holds a few settings; give the right file")
    return data


def load(text: str, where: str) -> Any:
    """Plain data from YAML text; UserError naming `where` (and line, column) for anything else."""
    if len(text) > MAX_BYTES:
        raise UserError(where, f"{len(text):,} characters: too large for a study file (at most {MAX_BYTES:,})",
                        "a study file holds a few settings; give the right file")
    loader = None
    try:
        loader = _Loader(text)  # it checks the characters at once
        root = loader.get_single_node()
        if root is None:
            return None
        check_size(root)
        return loader.construct_document(root)
    except TooComplex as e:
        raise UserError(where + _at(e.mark), f"refused: {e.reason}",
                        "study files are small plain data; write the values out, without deep or "
                        "self-referencing aliases") from None
    except yaml.YAMLError as e:
        raise UserError(where + _at(getattr(e, "problem_mark", None)), f"not valid YAML: {_problem(e)}",
                        _hint(e)) from None
    except (RecursionError, ValueError, TypeError, OverflowError) as e:
        # a reader bug must not become a traceback: say what could not be read
        raise UserError(where, f"cannot be read as YAML ({type(e).__name__}: {str(e)[:200]})",
                        "check the file is the intended study file") from None
    finally:
        if loader is not None:
            loader.dispose()


def dump(data: Any) -> str:
    """YAML that `load` reads back as `data` (block style, keys in their order)."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True)


def _at(mark) -> str:
    return f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def _problem(e: yaml.YAMLError) -> str:
    return getattr(e, "problem", None) or str(e).splitlines()[0]


def _hint(e: yaml.YAMLError) -> str:
    problem = _problem(e)
    if "zero-padded" in problem:
        return "write the number without leading zeros (e.g. 7), or quote it if a text is meant ('007')"
    if "appears twice" in problem:
        return "each key (and each arm name) may appear once"
    if "is not a string" in problem or "a key is a" in problem:
        return "quote the key, e.g. '1': or 'true':"
    if isinstance(e, yaml.reader.ReaderError):
        return "the file holds control characters or binary data: give a YAML text file"
    if isinstance(e, ConstructorError):
        return "study files hold plain data only: remove the `!!` tag"
    return "check indentation and that lists use [a, b] or '- ' items"

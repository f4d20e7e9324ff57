"""Read a pack's YAML: one file or a folder merged by top-level keys, with a line map.

Every node's file and line is remembered by its path (`LineMap`), so errors found later, in the
schema or in compilation, name where they are. A key defined twice, in one mapping or across
files, is an error naming both places; aliases that expand past a bound are refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from discretion.errors import PolicyError

__all__ = ["LineMap", "read_pack"]

_MERGED_LISTS = ("roles", "budgets")
_MERGED_MAPS = ("context", "actions")


class LineMap:
    """Remembers the file and line of every node of the YAML, by its path."""

    def __init__(self) -> None:
        self.where: dict[tuple[Any, ...], tuple[str, int]] = {}
        self.keys: dict[tuple[Any, ...], tuple[str, int]] = {}
        """Where each mapping key itself is (`where` holds its value's line)."""

    def add(self, node: yaml.Node, path: tuple[Any, ...], source: str) -> None:
        self.where[path] = (source, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            _check_unique_keys(node, source)
            for key, value in node.value:
                self.where[(*path, key.value)] = (source, key.start_mark.line + 1)
                self.keys[(*path, key.value)] = (source, key.start_mark.line + 1)
                self.add(value, (*path, key.value), source)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.add(item, (*path, index), source)

    def graft(self, target: tuple[Any, ...], source: tuple[Any, ...], count: int) -> None:
        """Place the `count` items of the list at `source` first in the list at `target`.

        The target's own items move `count` places on, so every item of the merged list is
        found where it is written.
        """
        size = len(target)
        for table in (self.where, self.keys):
            moved = {
                (*path[:size], path[size] + count, *path[size + 1 :]): at
                for path, at in table.items()
                if path[:size] == target and len(path) > size and isinstance(path[size], int)
            }
            for path in [p for p in table if p[:size] == target and len(p) > size]:
                if isinstance(path[size], int):
                    del table[path]
            table.update(moved)
            width = len(source)
            table.update(
                {
                    (*target, *path[width:]): at
                    for path, at in list(table.items())
                    if path[:width] == source
                    and len(path) > width
                    and isinstance(path[width], int)
                    and path[width] < count
                }
            )

    def find(self, path: tuple[Any, ...]) -> tuple[str | None, int | None]:
        while path:
            if path in self.where:
                return self.where[path]
            path = path[:-1]
        return None, None


def _check_unique_keys(node: yaml.MappingNode, source: str) -> None:
    # PyYAML keeps the last of two equal keys silently; in a policy that hides a rule.
    seen: set[Any] = set()
    for key, _ in node.value:
        if key.value in seen:
            raise PolicyError(
                f"key {key.value!r} appears twice in the same mapping",
                path=source,
                line=key.start_mark.line + 1,
            )
        seen.add(key.value)


_MAX_NODES = 200_000
"""The most YAML nodes a pack file may expand to, aliases counted at each use."""
_MAX_DEPTH = 64
"""The deepest a pack file's values may nest; the deepest a pack needs is about ten."""


def _check_size(node: yaml.Node, source: str) -> None:
    # An alias is a reference: nine aliases of nine aliases of ... (a "billion laughs") are a
    # few lines of YAML that expand to billions of values and would hang everything after.
    count, pending = 0, [(node, 0)]
    while pending:
        current, depth = pending.pop()
        count += 1
        if count > _MAX_NODES:
            raise PolicyError(
                f"the pack expands to more than {_MAX_NODES} YAML values (aliases counted at"
                " each use); write the values out instead of repeating anchors",
                path=source,
                line=current.start_mark.line + 1,
            )
        if depth > _MAX_DEPTH:
            raise PolicyError(
                f"values nested more than {_MAX_DEPTH} levels deep; a pack's values are a few"
                " levels deep: flatten the structure",
                path=source,
                line=current.start_mark.line + 1,
            )
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                pending.extend(((key, depth + 1), (value, depth + 1)))
        elif isinstance(current, yaml.SequenceNode):
            pending.extend((item, depth + 1) for item in current.value)


class _Loader(yaml.SafeLoader):
    """YAML's safe loader, reading a date (`2026-12-25`) as the text it is.

    The schema parses the fields that are dates; everywhere else a date is what was written,
    and the pack's content hash reads plain JSON values only.
    """


_Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _read_file(path: Path, lines: LineMap) -> tuple[dict[str, Any], dict[str, yaml.Node]]:
    """Parse one pack file once; return its data and its top-level nodes by key."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read the pack file: {exc.strerror}", path=source) from exc
    try:
        # The reader refuses control characters as soon as it is made: inside the try.
        loader = _Loader(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"not valid YAML: {exc}", path=source) from None
    try:
        node = loader.get_single_node()
        if node is not None:
            _check_size(node, source)
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise PolicyError(
            f"not valid YAML: {getattr(exc, 'problem', None) or exc}",
            path=source,
            line=mark.line + 1 if mark is not None else None,
        ) from None
    except RecursionError:
        raise PolicyError(
            f"values nested more than {_MAX_DEPTH} levels deep; a pack's values are a few"
            " levels deep: flatten the structure",
            path=source,
        ) from None
    finally:
        loader.dispose()
    if data is None:
        return {}, {}
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        raise PolicyError("a pack file must be a YAML mapping at the top level", path=source)
    _check_unique_keys(node, source)
    for key, value in node.value:
        # Positions in merged lists are only known once merged, so lists record them later.
        if key.value not in _MERGED_LISTS:
            lines.add(value, (key.value,), source)
        lines.where[(key.value,)] = (source, key.start_mark.line + 1)
    return data, {key.value: value for key, value in node.value}


def _merge(paths: list[Path], lines: LineMap) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    owner: dict[tuple[str, ...], str] = {}
    for path in paths:
        data, nodes = _read_file(path, lines)
        for key, value in data.items():
            if key in _MERGED_LISTS:
                if not isinstance(value, list):
                    raise PolicyError(f"{key!r} must be a list", path=str(path))
                start = len(merged.setdefault(key, []))
                for index, item in enumerate(nodes[key].value):
                    lines.add(item, (key, start + index), str(path))
                merged[key].extend(value)
            elif key in _MERGED_MAPS:
                if not isinstance(value, dict):
                    raise PolicyError(f"{key!r} must be a mapping", path=str(path))
                target = merged.setdefault(key, {})
                for name, item in value.items():
                    if name in target:
                        raise PolicyError(
                            f"{key}.{name} is defined twice: in {owner[(key, name)]} and here",
                            path=str(path),
                        )
                    owner[(key, name)] = str(path)
                    target[name] = item
            else:
                if key in merged:
                    raise PolicyError(
                        f"top-level key {key!r} is defined twice: in {owner[(key,)]} and here",
                        path=str(path),
                    )
                owner[(key,)] = str(path)
                merged[key] = value
    return merged


def _pack_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
        if not files:
            raise PolicyError("the folder holds no .yaml pack files", path=str(path))
        return files
    if not path.exists():
        raise PolicyError("no such pack file or folder", path=str(path))
    return [path]


def read_pack(path: Path) -> tuple[dict[str, Any], LineMap, list[Path]]:
    """The merged YAML of a pack file or folder, its line map, and the files it came from.

    Raises:
        PolicyError: naming the file and line of the first fault.
    """
    files = _pack_files(path)
    lines = LineMap()
    return _merge(files, lines), lines, files

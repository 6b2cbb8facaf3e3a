"""Reading YAML safely: what every config and space file of fsf goes through.

No Python tags (a safe loader), a key written twice in one mapping is an error (instead of
PyYAML's silent last-wins), and hostile input (an alias "billion laughs" bomb, deep nesting,
huge text) is refused at load, before anything walks it (`YamlLimits`). Problems are
`ConfigError`s naming the file. A base-layer module: it needs only `fsf.errors`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from fsf.errors import ConfigError, Problem, clip, short_repr
from fsf.text import InputTooLarge, read_limited

__all__ = ["YamlLimits", "load_yaml", "read_yaml"]


class YamlLimits:
    """What a config file may hold: hostile YAML (an alias "billion laughs" bomb, deep
    nesting) is refused at load, before anything walks it."""

    #: values (scalars, lists, mappings) once aliases are expanded
    max_values = 100_000
    #: nesting depth
    max_depth = 64
    #: bytes of text
    max_bytes = 10 * 2**20


class _DuplicateKey(Exception):
    pass


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """`line L, column C: what` of a YAML syntax error (PyYAML's own text quotes the input)."""
    mark = getattr(exc, "problem_mark", None)
    what = getattr(exc, "problem", None) or str(exc)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"not valid YAML: {where}{clip(what, 200)}"


class _UniqueKeyLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses a key written twice in one mapping (instead of keeping
    the last). Keys brought in by a merge (`<<: *base`) may be overridden, as YAML intends."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:
                    continue  # an unhashable key: SafeConstructor reports it
                if first is not None:
                    raise _DuplicateKey(
                        f"line {key_node.start_mark.line + 1}: the key {short_repr(key)} is "
                        f"written twice in one mapping (first on line {first + 1}); remove one"
                    )
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(
    "tag:yaml.org,2002:map",
    lambda loader, node: (yield from yaml.SafeLoader.construct_yaml_map(loader, node)),
)


def _check_size(data: Any, source: str | None) -> None:
    """Refuse data whose expansion (aliases repeated) exceeds `YamlLimits`; shared values
    are counted once per use without walking them again."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()

    def fail(message: str) -> None:
        raise ConfigError([Problem("", message)], source)

    def size(value: Any, depth: int) -> int:
        if not isinstance(value, (list, tuple, set, frozenset, dict)):
            return 1
        key = id(value)
        if key in sizes:
            return sizes[key]
        if key in open_:
            fail("a YAML alias refers to a value that contains it (a recursive structure)")
        if depth > YamlLimits.max_depth:
            fail(f"values are nested more than {YamlLimits.max_depth} levels deep")
        open_.add(key)
        n = 1
        items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
        for item in items:
            n += size(item, depth + 1)
            if n > YamlLimits.max_values:
                fail(
                    f"the YAML expands to more than {YamlLimits.max_values:,} values "
                    "(aliases repeated in aliases: an alias bomb?); a config is not that large"
                )
        open_.discard(key)
        sizes[key] = n
        return n

    size(data, 0)


def _too_large(source: str | None) -> ConfigError:
    return ConfigError(
        [Problem("", f"larger than {YamlLimits.max_bytes:,} bytes, the most a config file may be")],
        source,
    )


def load_yaml(text: str, source: str | None = None) -> Any:
    """Parse YAML text safely: no Python tags, a key written twice in a mapping is an error,
    and the size limits of `YamlLimits` hold. Raises ConfigError naming `source`."""
    if len(text) > YamlLimits.max_bytes:
        raise _too_large(source)
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        raise ConfigError([Problem("", _yaml_problem(exc))], source) from exc
    except _DuplicateKey as exc:
        raise ConfigError([Problem("", str(exc))], source) from None
    except RecursionError:
        raise ConfigError(
            [Problem("", f"values are nested more than {YamlLimits.max_depth} levels deep")],
            source,
        ) from None
    _check_size(data, source)
    return data


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file (`load_yaml`); an unreadable or malformed file is a ConfigError
    naming it. At most `YamlLimits.max_bytes` are read: a larger file (or a device such as
    /dev/zero) is refused without being read whole."""
    source = str(path)
    try:
        text = read_limited(Path(path), YamlLimits.max_bytes, source).decode("utf-8")
    except InputTooLarge:
        raise _too_large(source) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError([Problem("", f"cannot read file: {clip(reason)}")], source) from None
    return load_yaml(text, source)

"""Reading configuration YAML safely: numbers like ``3e-4``, no duplicate
keys, no recursive aliases; one-line errors naming the file and line."""
from __future__ import annotations

import os
import re
from typing import Any, Mapping

import yaml
from rllib_algospace.config.values import ConfigError


class YamlLoader(yaml.SafeLoader):
    """Safe YAML loader that reads ``3e-4`` as a number (YAML 1.1 needs ``3.0e-4``)
    and rejects duplicate keys."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _yaml_error(source: str, exc: yaml.YAMLError) -> ConfigError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return ConfigError(f"{source}: {where}invalid YAML: {problem}", source=source)


def read_yaml(path: str | os.PathLike) -> Any:
    source = os.fspath(path)
    try:
        with open(os.path.expanduser(source), encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise ConfigError(f"{source}: file not found", source=source) from None
    except IsADirectoryError:
        raise ConfigError(f"{source}: is a folder, not a YAML file", source=source) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: not UTF-8 text", source=source) from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror or exc}", source=source) from None
    try:
        data = yaml.load(text, Loader=YamlLoader)
    except yaml.YAMLError as exc:
        raise _yaml_error(source, exc) from None
    where = find_cycle(data)
    if where is not None:
        raise ConfigError(f"{source}: {where or '<top level>'}: a YAML alias refers to itself (a recursive structure)", source=source, key=where)
    return {} if data is None else data


def find_cycle(node: Any, path: str = "", open_nodes: set | None = None, done: set | None = None) -> str | None:
    """The dotted key of a value that contains itself (a recursive YAML
    alias), or None. Keeps the containers open on the current path, and
    visits a shared (aliased) container once: a chain of aliases stays linear."""
    if not isinstance(node, (dict, list)):
        return None
    open_nodes = set() if open_nodes is None else open_nodes
    done = set() if done is None else done
    if id(node) in open_nodes:
        return path
    if id(node) in done:
        return None
    open_nodes.add(id(node))
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        found = find_cycle(value, f"{path}.{key}" if path and isinstance(node, dict) else (f"{path}[{key}]" if path else str(key)), open_nodes, done)
        if found is not None:
            return found
    open_nodes.discard(id(node))
    done.add(id(node))
    return None


def copy_tree(raw: Any) -> Any:
    if isinstance(raw, Mapping):
        return {k: copy_tree(v) for k, v in raw.items()}
    if isinstance(raw, list):
        return [copy_tree(v) for v in raw]
    return raw

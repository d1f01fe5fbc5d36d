"""Render the chart without helm: a small renderer for the subset of Go templates the chart uses.

The chart's test renders it with this module on every run (helm is not needed to run the suite), then
checks the manifests structurally; where helm is installed (``make helm``) the test also runs
``helm lint`` and ``helm template`` and asserts both renderings parse to the same documents, so this
renderer cannot drift from helm unnoticed. A template outside the subset fails loudly.

The subset: text; ``{{ … }}`` with ``{{-``/``-}}`` trimming; ``if``/``else``/``end``; ``define`` (in
``_helpers.tpl``); pipelines starting with ``.Values.…``, ``.Release.Name|Service|Namespace``,
``.Chart.AppVersion|Version|Name``, ``.Files.Get "path"``, ``include "name" .``, ``not X`` or
``toYaml X``, then ``| quote``, ``| toYaml``, ``| nindent N``, ``| indent N``.

    .venv/bin/python deploy/helm/render.py [--set a.b=value …] > manifests.yaml
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parent / "xpstream"
_ACTION = re.compile(r"(\{\{-?.*?-?\}\})", re.DOTALL)
_WORD = re.compile(r'"[^"]*"|\S+')


class TemplateError(Exception):
    """A template uses something outside the supported subset, or names a missing value."""


@dataclass
class Node:
    kind: str  # text, expr, if, define
    text: str = ""
    then: list[Node] = field(default_factory=list)
    otherwise: list[Node] = field(default_factory=list)


def _tokens(source: str) -> list[tuple[str, str]]:
    parts = _ACTION.split(source)
    tokens: list[tuple[str, str]] = []
    trim_next = False
    for part in parts:
        if part.startswith("{{") and part.endswith("}}"):
            inner = part[2:-2]
            if inner.startswith("-"):
                if tokens and tokens[-1][0] == "text":
                    tokens[-1] = ("text", tokens[-1][1].rstrip(" \t\r\n"))
                inner = inner[1:]
            trim_next = inner.endswith("-")
            if trim_next:
                inner = inner[:-1]
            tokens.append(("action", inner.strip()))
        else:
            tokens.append(("text", part.lstrip(" \t\r\n") if trim_next else part))
            trim_next = False
    return tokens


def parse(source: str, defines: dict[str, list[Node]]) -> list[Node]:
    """The template's node tree; ``define`` blocks go into ``defines``."""
    root: list[Node] = []
    stack: list[tuple[Node | None, list[Node]]] = [(None, root)]
    for kind, value in _tokens(source):
        body = stack[-1][1]
        if kind == "text":
            if value:
                body.append(Node("text", value))
            continue
        head, _, rest = value.partition(" ")
        if head == "if":
            node = Node("if", rest.strip())
            body.append(node)
            stack.append((node, node.then))
        elif head == "define":
            node = Node("define", rest.strip().strip('"'))
            stack.append((node, node.then))
        elif head == "else":
            node = stack[-1][0]
            if node is None or node.kind != "if":
                raise TemplateError("else outside if")
            stack[-1] = (node, node.otherwise)
        elif head == "end":
            node, _ = stack.pop()
            if node is None:
                raise TemplateError("end without a block")
            if node.kind == "define":
                defines[node.text] = node.then
        elif value.startswith("/*"):
            continue
        else:
            body.append(Node("expr", value))
    if len(stack) != 1:
        raise TemplateError("a block is not closed with end")
    return root


@dataclass
class Context:
    values: dict[str, Any]
    release: dict[str, Any]
    chart: dict[str, Any]
    defines: dict[str, list[Node]]
    files: Path


def _lookup(path: str, context: Context) -> Any:
    parts = path.lstrip(".").split(".")
    roots = {"Values": context.values, "Release": context.release, "Chart": context.chart}
    if parts[0] not in roots:
        raise TemplateError(f"unsupported reference {path}")
    value: Any = roots[parts[0]]
    for part in parts[1:]:
        if not isinstance(value, dict) or part not in value:
            raise TemplateError(f"missing value {path}")
        value = value[part]
    return value


def _to_yaml(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=False, sort_keys=True).rstrip("\n")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, int | float | str):
        return str(value)
    raise TemplateError(f"cannot print a {type(value).__name__} without toYaml")


def _literal(word: str) -> str:
    if not (word.startswith('"') and word.endswith('"')):
        raise TemplateError(f"expected a string literal, got {word}")
    return word[1:-1]


def _command(words: list[str], piped: Any, has_piped: bool, context: Context) -> Any:
    name, args = words[0], words[1:]
    if not has_piped and name.startswith(".") and name != ".Files.Get":
        return _lookup(name, context)
    if name == ".Files.Get":
        return (context.files / _literal(args[0])).read_text(encoding="utf-8")
    if name == "include":
        if args[1:] != ["."]:
            raise TemplateError("include takes a name and the root context '.'")
        return render_nodes(context.defines[_literal(args[0])], context)
    if name == "not":
        return not _truthy(piped if has_piped else _lookup(args[0], context))
    if name == "toYaml":
        return _to_yaml(piped if has_piped else _lookup(args[0], context))
    if name == "quote":
        return json.dumps(_text(piped if has_piped else _lookup(args[0], context)))
    if name in ("nindent", "indent"):
        pad = " " * int(args[0])
        text = _text(piped)
        indented = "\n".join(pad + line if line else line for line in text.split("\n"))
        return "\n" + indented if name == "nindent" else indented
    raise TemplateError(f"unsupported function {name}")


def evaluate(expression: str, context: Context) -> Any:
    value: Any = None
    for position, command in enumerate(expression.split("|")):
        words = _WORD.findall(command.strip())
        value = _command(words, value, position > 0, context)
    return value


def _truthy(value: Any) -> bool:
    return bool(value) if not isinstance(value, int | float) or isinstance(value, bool) else value != 0


def render_nodes(nodes: list[Node], context: Context) -> str:
    out: list[str] = []
    for node in nodes:
        if node.kind == "text":
            out.append(node.text)
        elif node.kind == "expr":
            out.append(_text(evaluate(node.text, context)))
        elif node.kind == "if":
            chosen = node.then if _truthy(evaluate(node.text, context)) else node.otherwise
            out.append(render_nodes(chosen, context))
    return "".join(out)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def render_chart(
    overrides: dict[str, Any] | None = None, *, release: str = "xp", chart: Path = CHART
) -> dict[str, str]:
    """Each template's rendered text (like ``helm template RELEASE chart``), by template file name."""
    values = yaml.safe_load((chart / "values.yaml").read_text(encoding="utf-8"))
    values = _merge(values, overrides or {})
    meta = yaml.safe_load((chart / "Chart.yaml").read_text(encoding="utf-8"))
    defines: dict[str, list[Node]] = {}
    templates = sorted((chart / "templates").iterdir())
    trees = {path.name: parse(path.read_text(encoding="utf-8"), defines) for path in templates}
    context = Context(
        values=values,
        release={"Name": release, "Namespace": "default", "Service": "Helm"},
        chart={"Name": meta["name"], "Version": meta["version"], "AppVersion": meta["appVersion"]},
        defines=defines,
        files=chart,
    )
    return {name: render_nodes(tree, context) for name, tree in trees.items() if not name.startswith("_")}


def documents(rendered: dict[str, str]) -> list[dict[str, Any]]:
    """Every non-empty YAML document of the rendered templates."""
    found = []
    for text in rendered.values():
        found += [d for d in yaml.safe_load_all(text) if d]
    return found


def _set(pairs: list[str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for pair in pairs:
        path, _, raw = pair.partition("=")
        target = overrides
        *parents, last = path.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = yaml.safe_load(raw)
    return overrides


if __name__ == "__main__":
    sets = [a for i, a in enumerate(sys.argv[1:]) if i > 0 and sys.argv[i] == "--set"]
    for name, text in render_chart(_set(sets)).items():
        if text.strip():
            sys.stdout.write(f"---\n# Source: xpstream/templates/{name}\n{text.strip()}\n")

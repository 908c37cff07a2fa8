"""The examples in the README and the docs say what the code takes: every ``bigseg`` command line
parses with the options it shows, and every call of a bigseg function binds to its signature
(a renamed option or keyword left behind in the docs fails here, not in a user's hands)."""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import inspect
import io
import re
import shlex
from pathlib import Path

import pytest

from bigseg.cli import build_parser
from bigseg.cli._terms import command_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def _blocks(language: set[str]) -> list[tuple[str, str]]:
    return [(f"{p.name}:{p.read_text()[:m.start()].count(chr(10)) + 1}", m.group(2))
            for p in DOCS for m in FENCE.finditer(p.read_text()) if m.group(1) in language]


def _command_lines() -> list[tuple[str, str]]:
    """Each ``bigseg ...`` line of the shell blocks, continuation lines joined, comments cut."""
    found = []
    for where, text in _blocks({"bash", "sh", "console", "shell"}):
        for line in text.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["bigseg"]:
                found.append((where, " ".join(shlex.quote(w) for w in words if w != "...")))
    return found


COMMANDS = _command_lines()


def test_the_docs_show_commands_and_python():
    assert len(COMMANDS) > 30 and len(_blocks({"python"})) > 8


@pytest.mark.parametrize("where,line", COMMANDS, ids=[f"{w} {c.split()[1]}" for w, c in COMMANDS])
def test_each_command_line_of_the_docs_parses(where, line):
    parser = build_parser()
    argv = shlex.split(line)[1:]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            _args, extra = parser.parse_known_args(argv)
        except SystemExit:
            pytest.fail(f"{where}: {line!r} is refused: {err.getvalue().strip()}")
    assert not extra, f"{where}: {line!r}: no such options {extra}"


def test_each_option_named_in_the_text_exists():
    """Inline mentions (`` `bigseg measure --rve` ``) name options of that command."""
    parser = build_parser()
    missing = []
    for p in DOCS:
        for span in re.findall(r"`(bigseg [a-z][^`]*)`", p.read_text()):
            words = span.split()
            with contextlib.suppress(KeyError):
                sub = command_parser(parser, words[1])
                missing += [f"{p.name}: {span!r}: {w.split('=')[0]}" for w in words[2:]
                            if w.startswith("--") and w.split("=")[0] not in sub._option_string_actions]
                continue
            missing.append(f"{p.name}: {span!r}: no command {words[1]!r}")
    assert not missing, "\n".join(missing)


def _callee(node: ast.expr, names: dict[str, object]) -> object | None:
    """The bigseg object a call's function names (``measure.scores``, ``bigseg.infer.segment``),
    else None (a method of a result, a builtin)."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in names:
        return None
    obj = names[node.id]
    for part in reversed(parts):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    mod = getattr(obj, "__module__", "") or ""
    return obj if callable(obj) and mod.split(".")[0] == "bigseg" else None


def _python_calls() -> list[tuple[str, str, object, ast.Call]]:
    found = []
    for where, text in _blocks({"python"}):
        tree = ast.parse(text)
        names: dict[str, object] = {"bigseg": importlib.import_module("bigseg")}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "bigseg":
                mod = importlib.import_module(node.module)
                for alias in node.names:
                    names[alias.asname or alias.name] = getattr(mod, alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "bigseg":
                        names[alias.asname or alias.name.split(".")[0]] = importlib.import_module(alias.name.split(".")[0])
        for sub in ("synth", "filters", "baselines", "models", "infer", "measure", "report", "io"):
            names.setdefault(sub, importlib.import_module(f"bigseg.{sub}"))  # imported by an earlier block
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and not any(isinstance(a, ast.Starred) for a in node.args) \
                    and all(k.arg is not None for k in node.keywords):  # no *args / **kwargs to count
                func = _callee(node.func, names)
                if func is not None:
                    file, fence = where.split(":")
                    found.append((f"{file}:{int(fence) + node.lineno}", ast.unparse(node)[:80], func, node))
    return found


CALLS = _python_calls()


def test_the_python_examples_call_bigseg():
    assert len(CALLS) > 40


@pytest.mark.parametrize("where,text,func,node", CALLS, ids=[f"{w} {t.split('(')[0]}" for w, t, _, _ in CALLS])
def test_each_python_call_of_the_docs_binds(where, text, func, node):
    try:
        inspect.signature(func).bind(*[object()] * len(node.args), **{k.arg: object() for k in node.keywords})
    except TypeError as exc:
        pytest.fail(f"{where}: {text}: {exc}")


def test_a_drifted_example_is_caught():
    """The checks fail on an option or keyword that is not there."""
    parser = build_parser()
    with contextlib.redirect_stderr(io.StringIO()):
        assert parser.parse_known_args(["measure", "x.ome.zarr", "--no-such-option"])[1]
    from bigseg import measure

    with pytest.raises(TypeError):
        inspect.signature(measure.scores).bind(object(), object(), no_such_keyword=1)
    assert isinstance(command_parser(parser, "run"), argparse.ArgumentParser)

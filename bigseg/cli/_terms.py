"""API error messages re-worded in a command's own terms (options and positional arguments).

The library names its parameters (`` `vol` ``, ``nan_policy='propagate'``); on the command line
the same check should name the option or argument the user typed (`` `--nan-policy` ``,
``--nan-policy propagate``, `` `source` ``).
"""

from __future__ import annotations

import argparse
import re

__all__ = ["in_cli_terms", "command_parser"]

#: API names of the input volume: on the command line, the command's first positional argument
VOLUME_NAMES = ("vol", "image", "path", "data")

#: API parameters every command with the option names otherwise (``connect(n_workers=)``: --workers)
COMMON_ALIASES = {"n_workers": "workers", "predict.model": "model", "predict.temporal": "temporal"}  # (API: the keys of a run's configuration)


def command_parser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The sub-parser of ``command`` (``bigseg COMMAND``)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[command]
    raise KeyError(command)


def _in_a_call(text: str, at: int) -> bool:
    """Whether position ``at`` of ``text`` lies inside the parentheses of a call, ``Name(...``
    (Python for the reader to type, every keyword of it left as it is)."""
    depth = 0
    for i in range(at - 1, -1, -1):
        if text[i] == ")":
            depth += 1
        elif text[i] == "(":
            if depth == 0:
                return i > 0 and (text[i - 1].isalnum() or text[i - 1] == "_")
            depth -= 1
    return False


def in_cli_terms(message: str, parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """``message`` with each API parameter the user gave as an option spelled as that option
    (`` `overlap` `` → `` `--overlap` ``) and each hint in the command's options
    (``nan_policy='propagate'`` → ``--nan-policy propagate``, "pass `` `format` ``" → "pass
    `` `--format` ``") and the input volume's API names (``vol``, ``image``, ``data``; ``path`` and
    ``source`` where the message quotes its value) as the command's first positional argument
    (``source``, ``path``, ``labels``, ...)."""
    options: dict[str, str] = {}
    positionals: list[str] = []  # in the order the command takes them
    for action in parser._actions:  # argparse keeps no public list of a parser's arguments
        if not action.option_strings:
            positionals.append(action.dest)
        elif action.dest not in options and action.help != argparse.SUPPRESS:
            longs = [o for o in action.option_strings if o.startswith("--")]
            if longs:
                options[action.dest] = longs[0]
    # only options the user gave: a value from elsewhere (a --config file) keeps its own name, also
    # where the user gave the option too but the value said is the file's ("Got 5" of `cluster: 5`
    # in the file, --cluster local typed); without a --config file every typed option is the one
    got = re.search(r"\bGot ('[^']*'|-?[\d.]+(?:e-?\d+)?)[\s.,;:)]", message + " ")  # a quoted or numeric value

    def typed(d: str) -> bool:
        value = getattr(args, d, None)
        if got is None or not getattr(args, "config", None) or isinstance(value, bool) \
                or not isinstance(value, (str, int, float)):
            return True
        said = got.group(1).strip("'")
        try:  # numbers as numbers: --radius -3 is "Got -3.0"
            return float(said) == float(str(value).split(",")[0]) or said == str(value)
        except ValueError:
            return said == str(value)

    # an option left unset is named as the option too where no --config file could have set it
    # ("`checkpoint_dir` with `resume`": the user can only give it as --checkpoint-dir)
    rename = {d: o for d, o in options.items()
              if d not in positionals and d != "help" and typed(d)
              and (getattr(args, d, None) != parser.get_default(d) or not getattr(args, "config", None))}
    # API parameters an option stands for under another name (set by the command: filter's --median is `size`)
    for name, dest in {**COMMON_ALIASES, **(getattr(args, "api_aliases", None) or {})}.items():
        if dest in positionals:  # where the message quotes that argument's value
            if repr(str(getattr(args, dest, None))) in message:
                rename[name] = dest
        elif dest in options and getattr(args, dest, None) != parser.get_default(dest) and name not in rename:
            rename[name] = options[dest]
    # the command's input: its first positional argument (source, path, labels, run, inbox ...)
    first = positionals[0] if positionals else None
    given = getattr(args, first, None) if first else None
    if isinstance(given, str):
        import os

        # as typed, or as the library quotes it (absolute: the path workers are handed)
        quoted = repr(given) in message or repr(os.path.abspath(given)) in message
        for name in (*VOLUME_NAMES, "source"):
            if name == first or name in positionals or name in rename:
                continue
            if name not in ("path", "source") or quoted:  # path/source: only where the message quotes it
                rename[name] = first

    def call(m: re.Match) -> str:  # name='value' in a hint → --option value
        name, value = m.group(1), m.group(2)
        if name not in options or name in positionals or _in_a_call(m.string, m.start()):
            return m.group(0)
        if value.startswith("("):  # a tuple: the options' z,y,x spelling
            value = ",".join(part.strip() for part in value[1:-1].split(",") if part.strip())
        return f"{options[name]} {value.strip(chr(39) + chr(34))}"

    if rename:
        message = re.sub(r"`(" + "|".join(map(re.escape, rename)) + r")`", lambda m: f"`{rename[m.group(1)]}`", message)
    message = re.sub(r"\bpass `([a-z_]+)`", lambda m: f"pass `{options[m.group(1)]}`" if m.group(1) in options
                     and m.group(1) not in positionals else m.group(0), message)  # a hint: the option to give
    # (not a keyword inside a call of another tool, "LocalCluster(memory_limit='4GiB')": that is Python to type)
    message = re.sub(r"(?<![\w.`-])([a-z_]+)=('[^']*'|\"[^\"]*\"|\([^()]*\)|[\w.+-]+)", call, message)
    # a hint that gave both spellings now says the same twice: "--fov auto, --fov auto"
    message = re.sub(r"(--[a-z-]+ [^\s,;()]+) \(\1\)", r"\1", message)
    # a hint of both spellings for another command's option (filter's advice to segment with
    # fov='auto'): the command line's alone
    message = re.sub(r"\(([a-z_]+)=('[^']*'|[\w.+-]+), (--[a-z-]+ [^\s,;()]+)\)", r"(\3)", message)
    return re.sub(r"(--[a-z-]+ [^\s,;()]+), \1\b", r"\1", message)

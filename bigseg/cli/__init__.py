"""The ``bigseg`` command line: a thin layer over the public API.

Each subcommand lives in its own module ``bigseg/cli/cmd_<name>.py`` exposing
``register(subparsers)``, which adds the parser and sets ``func`` (called with the parsed
arguments, returning an exit code). Modules are discovered, so adding a subcommand touches
only its own file.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import importlib
import os
import pkgutil
import sys
import warnings
from typing import Any

from .._version import version
from ..errors import POINT_AT_CALLER, BigsegError, UncalibratedWarning
from ..runtime._files import FULL
from ..runtime._signals import stops_not_lost, terminate_as_exit, waits_for_imports
from ..runtime._terminal import PrintableStream
from ._terms import command_parser, in_cli_terms

__all__ = ["main", "build_parser"]


#: where :class:`_StoreOnce` keeps what each option was given, removed by :func:`main` after parsing
_GIVEN = "_bigseg_given"


class _StoreOnce(argparse._StoreAction):
    """An option that takes a value (``--voxel-size 0.5``), noted when given again with another
    value (``--voxel-size 0.5 ... --voxel-size 2``: argparse keeps the last one without a word;
    :func:`main` warns, naming both: a script's default and its override, or a slip)."""

    def __call__(self, parser, namespace, values, option_string=None):  # noqa: ANN001
        given = getattr(namespace, _GIVEN, None)
        if given is None:
            given = {}
            setattr(namespace, _GIVEN, given)
        given.setdefault(self.dest, []).append((option_string, values))
        super().__call__(parser, namespace, values, option_string)


def _warn_given_twice(given: dict[str, list[tuple[str, Any]]]) -> None:
    for said in given.values():
        if len({str(v) for _, v in said}) > 1:
            ways = " and ".join(f"{o} {v}" for o, v in said)
            warnings.warn(f"{said[0][0]} given {len(said)} times, as {ways}: the last, {said[-1][1]}, is taken.",
                          UserWarning, stacklevel=2)


def _store_once(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:  # argparse keeps no public list of a parser's arguments
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _store_once(sub)
        elif type(action) is argparse._StoreAction and action.option_strings:
            action.__class__ = _StoreOnce


#: the end of ``bigseg --help``: a first scan from TIFF slices to numbers (README "Your own scan, step by step")
_EXAMPLES = """\
a first scan, step by step (bigseg demo: all of it on a generated electrode):
  bigseg info scan_tiffs/          # shape, dtype, the voxel size it states
  bigseg ingest scan_tiffs/ scan.ome.zarr --voxel-size 50 --unit nm
  bigseg segment scan.ome.zarr --model default   # -> labels/segmentation
  bigseg measure scan.ome.zarr --csv metrics.csv # fractions, interfaces
  bigseg run scan_tiffs/ --out results/  # all at once: results/report.html

bigseg COMMAND --help says more. Exit codes: 0 done; 2 a bad argument or input
(one line on stderr); 130 Ctrl-C; 143 SIGTERM; 141 a pipe's reader left; 1
anything else. Results go to stdout; progress, notes and warnings to stderr."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bigseg",
        description="Segment and quantify battery-electrode X-ray CT volumes too big for one computer's memory.",
        epilog=_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"bigseg {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.startswith("cmd_"))
    for name in names:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    _store_once(parser)
    return parser


# what the output says in symbols, for a terminal (or a batch job's log) that cannot show them
_PLAIN = {"µ": "u", "μ": "u", "²": "^2", "³": "^3", "⁹": "^9", "⁻": "^-", "¹": "1", "×": "x", "→": "->",
          "–": "-", "—": "-", "±": "+/-", "≥": ">=", "≤": "<=", "τ": "tau", "…": "...", "Å": "A", "·": "."}


def _plain(exc: UnicodeError) -> tuple[str, int]:
    text = exc.object[exc.start:exc.end]
    return "".join(_PLAIN.get(c, "?") for c in text), exc.end


codecs.register_error("bigseg-plain", _plain)


def _plain_streams() -> None:
    """stdout and stderr write µm², 10⁹, × as um^2, 10^9, x where their encoding has no such
    characters (a C or Latin-1 locale, PYTHONIOENCODING=ascii) instead of failing."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError, OSError):
            stream.reconfigure(errors="bigseg-plain")


def _unrecognized(sub: argparse.ArgumentParser, command: str, extra: list[str]) -> None:
    """Exit (2) as ``sub`` does on a bad argument: the arguments it does not know, and for an
    option the closest ones it has."""
    import difflib

    known = [s for a in sub._actions for s in a.option_strings if s.startswith("--") and s != "--help"]
    hints = []
    for arg in extra:
        name = arg.split("=", 1)[0]
        if name.startswith("-"):
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.7)
            if close:
                hints.append(f"{name}: did you mean {close[0]}?")
    sub.error(f"unrecognized arguments: {' '.join(extra)}" + (f" ({'; '.join(hints)})" if hints else "")
              + f"; see bigseg {command} --help")


def _said_first(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """A command or option mistyped, said with the one probably meant where argparse would hide it:
    ``bigseg segmnt`` (argparse listed the 15 commands, none picked out), ``bigseg segment S
    --modle default`` (argparse said "one of the arguments --model --method is required", the
    option typed not named). An unknown option is said this way only where the command line fails
    to parse: otherwise :func:`main` says it, with its value, as before."""
    import difflib

    at = next((i for i, a in enumerate(argv) if not a.startswith("-")), None)
    if at is None or "-h" in argv[:at] or "--help" in argv[:at] or "--version" in argv[:at]:
        return
    sub_action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    command = argv[at]
    if command not in sub_action.choices:
        close = difflib.get_close_matches(command, list(sub_action.choices), n=1, cutoff=0.6)
        parser.error(f"argument COMMAND: invalid choice: {command!r}"
                     + (f" (did you mean {close[0]}?)" if close else "") + "; see bigseg --help")
    rest = argv[at + 1:argv.index("--")] if "--" in argv[at + 1:] else argv[at + 1:]
    if "-h" in rest or "--help" in rest:
        return
    sub = sub_action.choices[command]
    known = [s for a in sub._actions for s in a.option_strings]
    unknown = [name for name in (a.split("=", 1)[0] for a in rest if a.startswith("--") and a != "--")
               if not any(k.startswith(name) for k in known)]  # an abbreviation (--mod) is argparse's to take
    if not unknown:
        return
    import io

    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_known_args(argv)
    except SystemExit:  # the command line fails to parse: the unknown option is the likelier cause
        _unrecognized(sub, command, unknown)


def _dash_values(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """``--times -30,0,30`` or ``--crop -10:,:,:`` as ``--times=-30,0,30``: argparse takes a
    value starting with ``-`` that is no plain negative number for an option and said
    "argument --times: expected one argument". A value that is one of the command's options
    (``--crop --overwrite``: the value forgotten) is left for argparse to refuse."""
    at = next((i for i, a in enumerate(argv) if not a.startswith("-")), None)
    if at is None:
        return argv
    try:
        sub = command_parser(parser, argv[at])
    except KeyError:  # not a command: argparse says so
        return argv
    known = {s for a in sub._actions for s in a.option_strings}
    takes = {s for a in sub._actions if isinstance(a, argparse._StoreAction) and a.nargs is None
             for s in a.option_strings}
    out, i = list(argv[:at + 1]), at + 1
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            out += argv[i:]
            break
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if arg in takes and nxt is not None and nxt.startswith("-") and nxt != "--" \
                and nxt.split("=", 1)[0] not in known:
            out.append(f"{arg}={nxt}")
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


def _quiet_shutdown_on_interrupt() -> Any:
    """Ctrl-C stops the command as before (KeyboardInterrupt), and first silences the loggers of a
    cluster being torn down (a run on a LocalCluster printed dozens of "Task exception was never
    retrieved" and worker tracebacks before "interrupted"). One that comes while a module is
    imported is raised once the import is done (:func:`~bigseg.runtime._signals.waits_for_imports`)."""
    import logging
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) \
            is not signal.default_int_handler:
        return None  # a caller's own handler (or a thread) is left alone

    def interrupted(signum, frame):  # noqa: ANN001
        for name in ("distributed", "asyncio", "tornado"):
            logging.getLogger(name).setLevel(logging.CRITICAL + 1)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C as Python's own
        raise KeyboardInterrupt

    return signal.signal(signal.SIGINT, waits_for_imports(interrupted))  # the handler before, put back when the command ends


#: the commands that take up what an interrupted run of theirs finished when run again (their
#: outputs are written block by block under resume keys); the others write each output whole
RESUMING = ("ingest", "filter", "segment", "run", "watch")


def _stopped_note(args: argparse.Namespace) -> str | None:
    """What a command stopped part-way (Ctrl-C, SIGTERM) kept and how to go on, where it says so
    itself (``stopped_note``: a function of its arguments; `bigseg train` goes on only with --resume)."""
    note = getattr(args, "stopped_note", None)
    return note(args) if callable(note) else None


def _kept_note(args: argparse.Namespace) -> str:
    """What a command stopped part-way (SIGTERM, a full disk) left: its own note, else what every
    command of its kind leaves."""
    return _stopped_note(args) or ("what it finished is kept; the same command resumes" if args.command in RESUMING
                                   else "nothing that looks finished was left; run the same command again")


def main(argv: list[str] | None = None) -> int:
    _plain_streams()
    parser = build_parser()
    argv = _dash_values(parser, list(sys.argv[1:] if argv is None else argv))
    _said_first(parser, argv)
    args, extra = parser.parse_known_args(argv)
    given = vars(args).pop(_GIVEN, {})  # no option of the command's (its resume keys are made of them)
    if extra:  # said by the command, with the option that was probably meant (was "bigseg: error: ...")
        _unrecognized(command_parser(parser, args.command), args.command, extra)
    default_show = warnings.showwarning
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    told: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        # bigseg's own warnings read as one line, like its errors (no source line of ours), each
        # said once (a source opened twice, by its check and by its read, warns from two places)
        if os.path.abspath(filename).startswith(package + os.sep):
            if str(message) not in told:  # in the command's terms, as its errors (`data` → `source`)
                told.add(str(message))
                said = in_cli_terms(str(message), command_parser(parser, args.command), args)
                print(f"bigseg {args.command}: warning: {said}", file=file or sys.stderr)
        else:
            default_show(message, category, filename, lineno, file, line)

    before = _quiet_shutdown_on_interrupt()
    at_caller, POINT_AT_CALLER[0] = POINT_AT_CALLER[0], False  # bigseg's warnings told as its own (show above)
    # what a command prints of its inputs (names, phases, units, paths) is shown, never run by the terminal
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = PrintableStream(sys.stdout), PrintableStream(sys.stderr)  # (the bars: bar_stream)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = show
            warnings.filterwarnings("default", category=UserWarning, module=r"bigseg(\.|$)")  # told, once
            warnings.filterwarnings("ignore", category=UncalibratedWarning)  # the commands print their own note
            _warn_given_twice(given)
            with terminate_as_exit(), stops_not_lost():  # SIGTERM (scancel, a job's time limit, kill): the cluster a command started
                return int(args.func(args) or 0)  # is closed, its SLURM jobs cancelled (was: Python died on the spot)
    except BigsegError as exc:
        print(f"bigseg {args.command}: error: {in_cli_terms(str(exc), command_parser(parser, args.command), args)}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # a Ctrl-C that landed in code run by exec() of a string (a dataclass or namedtuple made as a
        # module imports) set CPython's "unhandled KeyboardInterrupt" mark though it is handled here:
        # `python -m bigseg` then ended killed by SIGINT (-2), not 130, after saying "interrupted".
        # exec() of a string clears that mark as it starts (CPython's run_eval_code_obj, 3.11-3.13)
        exec("")  # noqa: S102
        note = _stopped_note(args)
        print(f"bigseg {args.command}: interrupted{'; ' + note if note else ''}", file=sys.stderr)
        return 130
    except SystemExit as exc:
        if exc.code == 143:  # terminate_as_exit's
            note = _kept_note(args)
            print(f"bigseg {args.command}: terminated (SIGTERM); {note}", file=sys.stderr)
        raise
    except BrokenPipeError:  # `bigseg measure ... | head`: the reader has what it wanted
        with contextlib.suppress(OSError):  # no second error when Python flushes stdout at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as a shell reports a command ended by SIGPIPE
    except OSError as exc:  # a disk or quota full where no output of bigseg's says so itself (a hidden
        if exc.errno not in FULL:  # working folder): one line, as every refusal, not a traceback ("a bug")
            raise
        note = _kept_note(args)
        where = f" writing {str(exc.filename)!r}" if exc.filename else ""
        print(f"bigseg {args.command}: error: no room{where}: {exc.strerror or os.strerror(exc.errno)} (disk or "
              f"quota full); {note}. Free space, or write elsewhere, and run again.", file=sys.stderr)
        return 2
    finally:
        sys.stdout, sys.stderr = streams
        POINT_AT_CALLER[0] = at_caller
        if before is not None:
            import signal

            signal.signal(signal.SIGINT, before)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

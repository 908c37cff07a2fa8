"""The "Examples" sections of the public callables' docstrings run and print what they show.

A scientist reads them with ``help(bigseg.measure.interfaces)`` and pastes them into a notebook:
each one is a doctest (run with ELLIPSIS and NORMALIZE_WHITESPACE), one case per callable, failing
with doctest's report of the first example whose output differs. The examples are tiny (32³
synthetic volumes) and leave no files (they write into a temporary folder they remove).
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import io

import pytest

#: the callables whose docstrings carry examples, as users reach them
DOCUMENTED = [
    "bigseg.synth.electrode",
    "bigseg.synth.xct",
    "bigseg.ingest",
    "bigseg.open_volume",
    "bigseg.save_volume",
    "bigseg.save_labels",
    "bigseg.filters.median",
    "bigseg.filters.gaussian",
    "bigseg.filters.normalize",
    "bigseg.baselines.threshold",
    "bigseg.infer.segment",
    "bigseg.measure.volume_fractions",
    "bigseg.measure.interfaces",
    "bigseg.measure.summary",
    "bigseg.measure.particles",
    "bigseg.measure.scores",
    "bigseg.models.load",
    "bigseg.Pipeline.run",
    "bigseg.train",
]

#: examples that take seconds (the bundled model, a pipeline run with its figures, a training step)
SLOW = {"bigseg.infer.segment", "bigseg.Pipeline.run", "bigseg.train"}

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _resolve(dotted: str):
    """The object a user reaches by ``dotted`` (``bigseg.train``: the function the callable
    package calls, whose docstring ``help(bigseg.train)`` shows)."""
    module, _, rest = dotted.partition(".")
    obj = importlib.import_module(module)
    for part in rest.split("."):
        obj = getattr(obj, part)
    if inspect.ismodule(obj) and callable(obj):
        obj = obj.train
    return obj


def _doctest(dotted: str) -> doctest.DocTest:
    """The examples of ``dotted``'s docstring as ``help`` shows it (some are completed at import,
    e.g. ``baselines.threshold``'s field-of-view text), numbered by the lines of its source file
    (of the function itself where a decorator wraps it)."""
    obj = _resolve(dotted)
    doc = obj.__doc__ or ""
    source = inspect.unwrap(obj)
    lines, first = inspect.getsourcelines(source)
    in_doc = [i for i, line in enumerate(doc.splitlines()) if line.strip() == "Examples"]
    in_file = [first + i for i, line in enumerate(lines) if line.strip() == "Examples"]
    assert len(in_doc) == len(in_file) == 1, f"{dotted}: expected one 'Examples' section"
    test = doctest.DocTestParser().get_doctest(doc, {}, dotted, inspect.getsourcefile(source), 0)
    assert test.examples, f"{dotted}: no examples"
    # doctest reports an example at DocTest.lineno + example.lineno + 1: the header ties both
    test.lineno = in_file[0] - 1 - in_doc[0]
    return test


def run_examples(test: doctest.DocTest) -> tuple[doctest.TestResults, str]:
    """Run one docstring's examples; the results and doctest's report of the failures."""
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=FLAGS, verbose=False)
    results = runner.run(test, out=out.write, clear_globs=True)
    return results, out.getvalue()


@pytest.mark.parametrize("dotted", [pytest.param(d, marks=pytest.mark.slow) if d in SLOW else d for d in DOCUMENTED])
def test_docstring_examples_run(dotted):
    test = _doctest(dotted)
    results, report = run_examples(test)
    assert results.failed == 0, f"{dotted}: {results.failed} of {results.attempted} examples failed\n{report}"


@pytest.mark.parametrize("dotted", DOCUMENTED)
def test_each_docstring_has_an_examples_section(dotted):
    doc = inspect.getdoc(_resolve(dotted)) or ""
    assert "\nExamples\n--------\n" in doc, f"{dotted}: no numpydoc 'Examples' section"


def test_a_wrong_expected_output_fails():
    """The runner compares outputs (a changed example would not pass unnoticed)."""
    test = _doctest("bigseg.models.load")
    for example in test.examples:
        if example.want.startswith("(['pore'"):
            example.want = example.want.replace("'cbd'", "'binder'")
            break
    else:
        pytest.fail("bigseg.models.load: the example printing the phases is gone")
    results, report = run_examples(test)
    assert results.failed == 1 and "'binder'" in report and "Expected:" in report

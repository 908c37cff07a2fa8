"""Gaps a mutation audit of report/_units found: each test fails on a wrong variant of the code
that the rest of the suite let through. Expected factors are unit conversions written out."""

import math

import pytest

from bigseg.report._units import readable, scale_bar


@pytest.mark.parametrize("values, units, factor, label", [
    ([1e4], "nm", 1e-3, "µm"),                         # 10 000 nm is the top of the range: 10 µm reads better
    ([0.05], "mm", 1e3, "µm"),                         # 0.05 mm (below 0.1) -> 50 µm
    ([0.5], "1/nm", 1.0, "nm⁻¹"),                      # 0.5 nm^-1 reads well: the data's unit is kept
    ([0.02], "1/nm", 1e3, "µm⁻¹"),                     # 0.02 nm^-1 (below 0.1) -> 20 µm^-1
    ([math.inf, 3.2e8, math.nan], "nm^2", 1e-6, "µm²"),  # non-finite values ignored
    ([-3.2e8, 10.0], "nm^2", 1e-6, "µm²"),             # the largest magnitude counts, whatever its sign
], ids=str)
def test_readable_picks_the_unit_by_the_largest_finite_magnitude(values, units, factor, label):
    f, lab = readable(values, units)
    assert lab == label
    assert f == pytest.approx(factor, rel=1e-12)


@pytest.mark.parametrize("span, units, length, label", [
    (10.0, "um", 2.0, "2 µm"),     # a fifth of the span is exactly 2: the bar is 2, not 1
    (25.0, "um", 5.0, "5 µm"),     # exactly 5
    (5.0, "um", 1.0, "1 µm"),
    (0.05, "mm", 0.01, "10 µm"),   # 10 µm, expressed in mm
], ids=str)
def test_scale_bar_takes_a_round_length_equal_to_a_fifth_of_the_span(span, units, length, label):
    got, lab = scale_bar(span, units)
    assert lab == label
    assert got == pytest.approx(length, rel=1e-12)

"""The report's title names the failing clause, not only FAIL (issue 17, item 10)."""

import dataclasses

from _build import hand_result

from circuitdsl.report.html import render_html
from circuitdsl.results import ExpectResult


def test_title_and_heading_name_the_failing_clause():
    r = hand_result()
    r = dataclasses.replace(
        r,
        expects=(
            ExpectResult("recovered", ">=", 0.8, 0.78, False, None, 21),
            ExpectResult("kl", "<=", 1.0, 0.5, True, None, 22),
        ),
    )
    page = render_html(r, source_text=None)
    assert "<title>tiny_test — circuitdsl report (fail: expect recovered &gt;= 0.8 (line 21): 0.78)</title>" in page
    assert 'class="failing"' in page and "expect kl" not in page.split("<main>")[1].split("</header>")[0]


def test_passing_report_title_unchanged():
    r = dataclasses.replace(hand_result(), expects=(ExpectResult("kl", "<=", 1.0, 0.5, True, None, 22),))
    assert "circuitdsl report (pass)</title>" in render_html(r, source_text=None)

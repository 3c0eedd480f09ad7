"""report.html is one file that works alone: mailed or moved without its folder, every figure and
every SVG link still opens, because nothing in it points outside the page."""

from __future__ import annotations

import base64
import re

import pytest

pytestmark = pytest.mark.slow


def test_report_html_refers_to_nothing_outside_itself(reports):
    report = reports("mlp-vs-linear")
    html = report.html()
    refs = re.findall(r'(?:href|src)="([^"]*)"', html)
    outside = [r for r in refs if not r.startswith(("#", "data:"))]
    assert refs and not outside, outside
    svgs = re.findall(r'href="data:image/svg\+xml;base64,([^"]+)" download="([^"]+)\.svg"', html)
    assert [name for _, name in svgs] == [f.name for f in report.figures]
    for (data, _), figure in zip(svgs, report.figures, strict=True):
        assert base64.b64decode(data) == figure.svg

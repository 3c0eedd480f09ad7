"""report.md cannot carry markup (issue 13): a crafted study file's report, rendered by real Markdown
renderers (CommonMark by markdown-it-py, and python-markdown), has no script, no event handler, no
``javascript:`` URL, and no link or image but the report's own figures."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from nnstudy.report.render import md_escape, md_fence

pytestmark = pytest.mark.slow  # the crafted study trains on real MNIST (seconds)

#: A study file that tries every way out: a TOML multi-line string and comments with backtick fences
#: (three, four and five), raw HTML, an event handler, javascript: links, a remote image, an autolink,
#: entities and python-markdown's own syntax.
HOSTILE = '''
[study]
name = "hostile"
question = """Is this safe?
```
<script>alert("fence 3")</script>
````
<img src=x onerror=alert(1)>
`````
[click](javascript:alert(1)) ![tracker](http://evil.example/x.png) <javascript:alert(2)>
\\\\<script>alert(3)</script> &lt;script&gt; <a href="javascript:alert(4)">a</a> [ref]: javascript:alert(5)
*[abbr]: <b onmouseover=alert(6)>x</b>
"""
seeds = 2
# ```
# <script>alert("comment")</script>
# ````

[data]
per_class = 20

[base]
epochs = 1

[scientific]
"model.activation" = ["relu", "tanh"]
'''


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _assert_inert(html: str) -> None:
    parser = _Tags()
    parser.feed(html)
    for tag, attrs in parser.tags:
        assert tag not in ("script", "iframe", "object", "embed", "style", "b"), (tag, attrs)
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)
        for a in ("href", "src"):
            url = (attrs.get(a) or "").strip().lower()
            assert not url.startswith(("javascript:", "http:", "https:", "data:")), (tag, attrs)
            if url:
                assert url.startswith("figures/"), (tag, attrs)  # the report's own figures only
    assert "<script" not in html.lower()


@pytest.fixture(scope="module")
def hostile_md(tmp_path_factory, mnist_dir) -> str:
    from nnstudy.report import StudyReport
    from nnstudy.study import load_study, open_study, run_study

    root = tmp_path_factory.mktemp("hostile")
    (root / "hostile.toml").write_text(HOSTILE)
    run_study(load_study(root / "hostile.toml"), root / "study", workers=1, data_dir=mnist_dir, quiet=True)
    report = StudyReport(open_study(root / "study"), data_dir=mnist_dir, gallery=False)
    report.write(root / "study")
    return (root / "study" / "report.md").read_text()


def test_commonmark_rendering_of_the_crafted_report_is_inert(hostile_md):
    from markdown_it import MarkdownIt

    html = MarkdownIt("commonmark").render(hostile_md)  # raw HTML allowed, as CommonMark specifies
    _assert_inert(html)
    assert "&lt;script&gt;alert(&quot;fence 3&quot;)&lt;/script&gt;" in html  # the study file: shown as code


def test_python_markdown_rendering_of_the_crafted_report_is_inert(hostile_md):
    """With fenced code blocks, as python-markdown renders a document that has them (core
    python-markdown has no fences at all: every fenced block would be read as Markdown)."""
    import markdown

    for extensions in (["fenced_code", "tables"], ["extra"]):
        _assert_inert(markdown.markdown(hostile_md, extensions=extensions))


def test_the_question_reads_as_written(hostile_md):
    from markdown_it import MarkdownIt

    html = MarkdownIt("commonmark").render(hostile_md)
    text = html.split("<em>", 1)[1].split("</em>", 1)[0]  # the question, under the title
    assert "[click](javascript:alert(1))" in text and "&lt;img src=x onerror=alert(1)&gt;" in text


def test_a_fence_is_longer_than_any_backtick_run_inside():
    assert md_fence("a = 1", "toml") == "```toml\na = 1\n```"
    assert md_fence("x = '''\n`````\n'''", "toml").startswith("``````toml\n")
    assert md_fence("x = '''\n`````\n'''").endswith("\n``````")


@pytest.mark.parametrize("text", ["<b>x</b>", "[a](javascript:b)", "![i](http://e/x.png)", "<http://e>",
                                  "a | b", "`code`", "*em* _em_", "&amp;", "\\<script>", "[a](javascript:b) [b] [a]",
                                  "[a][r] [r]: javascript:b", "[r]: javascript:b", "# h {onclick=alert(1)}"])
def test_md_escape_leaves_no_markup_in_either_renderer(text):
    import markdown
    from markdown_it import MarkdownIt

    for html in (MarkdownIt("commonmark").render(md_escape(text)),
                 markdown.markdown(md_escape(text), extensions=["extra"])):
        inner = html.strip().removeprefix("<p>").removesuffix("</p>")
        assert "<" not in inner.replace("&lt;", ""), (text, html)
    assert md_escape("batch_size=32") == "batch_size=32"  # an underscore inside a word stays readable


def test_md_escape_keeps_the_reports_own_sentences_as_written():
    sentence = "model={kind=mlp, hidden=[300]} beats model={kind=linear}: 92.11% [91.62%, 92.59%] (P = 1.00)."
    assert md_escape(sentence) == sentence

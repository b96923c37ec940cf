r"""Text from a submission, made safe to write, to show in Markdown and to print on a terminal.

A notebook, an error message or a file name can hold anything: lone surrogates (which UTF-8
cannot encode), control characters (which a terminal obeys: clear the screen, set the clipboard)
and Markdown or HTML (which a feedback page would render). Everything a report shows of a
submission goes through these functions.

Examples
--------
>>> printable("bad \udcff x")
'bad \\udcff x'
>>> visible("a\x1b[2Jb\nc")
'a\\x1b[2Jb\nc'
>>> code_span("x`<b>`")
'`` x`<b>` ``'
"""

from __future__ import annotations

__all__ = ["printable", "visible", "code_span"]

_KEPT = "\n\t"


def printable(text: str) -> str:
    """``text`` with what UTF-8 cannot encode (lone surrogates) escaped, so any report can
    write it."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def visible(text: str) -> str:
    r""":func:`printable` ``text`` with every control character but newline and tab shown as an
    escape (``\x1b``): nothing in it can drive a terminal."""
    return "".join(
        c
        if c.isprintable() or c in _KEPT
        else f"\\x{ord(c):02x}"
        if ord(c) < 256
        else f"\\u{ord(c):04x}"
        for c in printable(text)
    )


def code_span(text: str) -> str:
    """``text`` as a Markdown code span that nothing in it can end: every non-printable
    character escaped (newlines included), the fence longer than any run of backticks inside.
    Inside a code span, Markdown and HTML are shown, never rendered."""
    shown = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in printable(text))
    run = current = 0
    for c in shown:
        current = current + 1 if c == "`" else 0
        run = max(run, current)
    fence = "`" * (run + 1)
    return f"{fence} {shown} {fence}" if run else f"{fence}{shown}{fence}"

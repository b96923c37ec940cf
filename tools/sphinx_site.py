"""Sphinx extension for the HTML book: alt text for every figure, and a site without dead weight.

Loaded by ``_config.yml`` (``sphinx.local_extensions``). Two jobs:

- Alt text. A figure a notebook stores (a PNG output) or an animation (matplotlib's
  ``to_jshtml`` player) has no alt text unless its cell sets one (cell metadata
  ``mystnb: {image: {alt: ...}}``); Sphinx then writes the file name as the alt. Such a figure
  gets the first sentence of the prose just before it, the sentence that introduces it.
- Lighter figures. Each PNG figure and animation frame is stored again with a palette of at most
  256 colours (exactly, when it has no more; by median cut without dithering otherwise) when that
  is smaller, keeping its dpi. Matplotlib's drawings use few colours, so most are unchanged to
  the eye and lose half their bytes. The notebooks keep their original images.
- Pruning. The theme packages copy files into ``_static/`` that no page requests: source maps
  (``*.map``), the theme's translation catalogues (used at build time), TrueType copies of the icon fonts (the ``woff2`` ones are used) and the icon fonts
  of families no page uses. They are deleted after the build.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)

ANIMATION_IMG = re.compile(r'<img id="_anim_img(\w+)"(?![^>]*\balt=)')
ANIMATION_FRAMES = re.compile(r"new Array\((\d+)\)")
# A frame of matplotlib's to_jshtml player: base64 with backslash-newline line continuations.
FRAME = re.compile(r"data:image/png;base64,([A-Za-z0-9+/=\\\n]+)")
SIMPLE_MATH = re.compile(r"^[A-Za-z0-9 _^+\-=*/(),.·≤≥→]*$")
MAX_ALT = 180
# Files of _static/ that earlier versions of the site shipped (the widgets' HTML manager).
RETIRED = ["html-manager", "requirejs", "widgets-config.js"]


TEX_WORDS = {
    r"\times": "x",
    r"\cdot": "·",
    r"\le": "≤",
    r"\leq": "≤",
    r"\ge": "≥",
    r"\geq": "≥",
    r"\to": "→",
    r"\ell": "l",
    r"\,": " ",
    r"\;": " ",
    r"\left": "",
    r"\right": "",
}


def _math_text(tex: str) -> str:
    r"""A formula as alt text: its letters when it is simple (``k = 3``, ``5\times5``), else
    "a formula"."""
    words = re.sub(r"\\[A-Za-z]+|\\[,;]", lambda m: TEX_WORDS.get(m[0], m[0]), tex)
    plain = " ".join(words.replace("{", "").replace("}", "").split())
    if SIMPLE_MATH.match(plain):
        return plain.replace("_", "")
    return "a formula"


def _prose(paragraph: nodes.paragraph) -> str:
    parts = []
    for node in paragraph.findall(nodes.Text):
        parent = node.parent
        if isinstance(parent, nodes.math):
            parts.append(_math_text(node.astext()))
        else:
            parts.append(node.astext())
    return " ".join("".join(parts).split())


def _first_sentence(text: str) -> str:
    match = re.match(r"(.+?[.!?:])(\s|$)", text)
    sentence = match.group(1) if match else text
    if len(sentence) > MAX_ALT:
        sentence = sentence[: MAX_ALT - 1].rsplit(" ", 1)[0] + "…"
    return sentence.rstrip(":") + ("" if sentence.endswith((".", "!", "?", "…")) else ".")


def _in_cell(node: nodes.Node) -> bool:
    parent = node.parent
    while parent is not None:
        if isinstance(parent, nodes.container) and "cell" in parent.get("classes", []):
            return True
        parent = parent.parent
    return False


def add_alt_text(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """Give every figure and animation without alt text the sentence that introduces it."""
    context = ""
    title = ""
    replacements = []
    for node in doctree.findall():
        if isinstance(node, nodes.title) and isinstance(node.parent, nodes.section):
            title = " ".join(node.astext().split())
            context = ""
        elif isinstance(node, nodes.paragraph) and not _in_cell(node):
            text = _prose(node)
            if text:
                context = _first_sentence(text)
        elif isinstance(node, nodes.image) and not node.get("alt"):
            node["alt"] = f"Figure: {context}" if context else f"Figure in “{title}”."
        elif isinstance(node, nodes.raw) and "html" in node.get("format", "").split():
            html = node.astext()
            if not ANIMATION_IMG.search(html):
                continue
            frames = ANIMATION_FRAMES.search(html)
            what = f"Animation, {frames.group(1)} frames" if frames else "Animation"
            about = context or f"in “{title}”."
            alt = f"{what}: {about}".replace('"', "&quot;")
            html = FRAME.sub(_lighter_frame, html)
            new = ANIMATION_IMG.sub(lambda m, a=alt: f'<img alt="{a}" id="_anim_img{m[1]}"', html)
            replacements.append((node, nodes.raw("", new, format=node["format"])))
    for old, new in replacements:
        old.replace_self(new)


def lighter_png(data: bytes) -> bytes:
    """The PNG ``data`` with a palette of at most 256 colours, if that is smaller (same dpi)."""
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()
    if image.mode == "P" or (
        image.mode in ("RGBA", "LA") and image.getchannel("A").getextrema()[0] < 255
    ):
        return data  # already a palette, or transparent
    rgb = image.convert("RGB")
    colours = rgb.getcolors(256)
    palette = rgb.quantize(
        len(colours) if colours else 256,
        method=Image.Quantize.MEDIANCUT,
        dither=Image.Dither.NONE,
    )
    out = io.BytesIO()
    dpi = image.info.get("dpi")
    palette.save(out, "PNG", optimize=True, **({"dpi": dpi} if dpi else {}))
    return out.getvalue() if out.tell() < len(data) else data


def _lighter_frame(match: re.Match) -> str:
    data = base64.b64decode(match[1].replace("\\", "").replace("\n", ""))
    return "data:image/png;base64," + base64.b64encode(lighter_png(data)).decode("ascii")


def lighten_images(app: Sphinx, exception: Exception | None) -> None:
    """Store the site's PNG figures with a palette where that is smaller."""
    if exception is not None or app.builder.format != "html":
        return
    before = after = 0
    for path in (Path(app.outdir) / "_images").glob("*.png"):
        data = path.read_bytes()
        lighter = lighter_png(data)
        before, after = before + len(data), after + len(lighter)
        if lighter is not data:
            path.write_bytes(lighter)
    logger.info(f"sphinx_site: PNG figures {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB")


def prune_static(app: Sphinx, exception: Exception | None) -> None:
    """Delete files of ``_static/`` and ``_images/`` that no page requests."""
    if exception is not None or app.builder.format != "html":
        return
    out = Path(app.outdir)
    static = out / "_static"
    pages = [p.read_text(encoding="utf-8", errors="replace") for p in out.rglob("*.html")]
    doomed = list(static.rglob("*.map"))
    fonts = static / "vendor" / "fontawesome" / "webfonts"
    doomed += list(fonts.glob("*.ttf"))
    doomed += [p for p in (static / "locales").rglob("*") if p.suffix in (".mo", ".po")]
    # Left by an earlier build in the same folder (Sphinx never deletes a static file): what the
    # site no longer ships, and MathJax files outside the current selection.
    for retired in RETIRED:
        path = static / retired
        doomed += [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else []
        doomed += [path] if path.is_file() else []
    vendor = Path(app.confdir, "_vendor")
    doomed += [
        p
        for p in (static / "mathjax").rglob("*")
        if p.is_file() and not (vendor / p.relative_to(static)).is_file()
    ]
    # The theme draws a brand icon for an "fa-brands" element and before a link it shortens to a
    # GitHub or GitLab address (class "github" or "gitlab").
    markers = {
        "brands": ("fa-brands", 'class="github ', 'class="gitlab '),
        "regular": ("fa-regular",),
    }
    for family, classes in markers.items():
        if not any(marker in page for page in pages for marker in classes):
            doomed += list(fonts.glob(f"fa-{family}-*"))
    # Figures of earlier runs of a notebook, which no page shows any more.
    shown = {name for page in pages for name in re.findall(r"_images/([^\"'?#\s]+)", page)}
    doomed += [p for p in (out / "_images").glob("*") if p.is_file() and p.name not in shown]
    freed = 0
    for path in sorted(set(doomed)):
        freed += path.stat().st_size
        path.unlink()
    for folder in sorted(static.rglob("*"), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    logger.info(f"sphinx_site: removed {len(doomed)} unused files ({freed / 1e6:.1f} MB)")


def _static_digest(app: Sphinx) -> str:
    digest = hashlib.sha256()
    for folder in app.config.html_static_path:
        root = Path(app.confdir, folder)
        for path in sorted(root.rglob("*")) if root.is_dir() else []:
            if path.is_file():
                digest.update(path.relative_to(root).as_posix().encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def rebuild_on_static_change(app: Sphinx, env, added, changed, removed) -> list[str]:
    """Rewrite every page when a file of ``html_static_path`` changed (the site's CSS or JS):
    Sphinx copies static files only when some page is rewritten."""
    digest = _static_digest(app)
    if getattr(env, "cnnlab_static_digest", None) == digest:
        return []
    env.cnnlab_static_digest = digest
    return sorted(env.found_docs)


def setup(app: Sphinx) -> dict:
    app.connect("env-get-outdated", rebuild_on_static_change)
    app.connect("doctree-resolved", add_alt_text)
    app.connect("build-finished", prune_static)
    app.connect("build-finished", lighten_images)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

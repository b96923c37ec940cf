"""Embed a matplotlib animation in a notebook or the HTML book, with no network access.

``Animation.to_jshtml()`` writes a self-contained player (frames as inline PNGs, inline
JavaScript) but styles its buttons with Font Awesome 4 from a CDN, so offline the buttons are
blank and the page makes a network request. :func:`animation_html` removes that stylesheet and
labels the buttons with plain Unicode symbols instead.
"""

from __future__ import annotations

import re

from IPython.display import HTML
from matplotlib.animation import Animation

__all__ = ["animation_html", "offline_jshtml"]

# Font Awesome icon class -> the symbol that replaces it on the button.
_ICON_SYMBOLS = {
    "fa-minus": "\u2212",  # minus sign: slower
    "fa-fast-backward": "\u21e4",  # first frame
    "fa-step-backward": "\u25c1",  # previous frame
    "fa-play fa-flip-horizontal": "\u25c0",  # play backwards
    "fa-pause": "\u275a\u275a",  # pause
    "fa-play": "\u25b6",  # play
    "fa-step-forward": "\u25b7",  # next frame
    "fa-fast-forward": "\u21e5",  # last frame
    "fa-plus": "+",  # faster
}
_CDN_STYLESHEET = re.compile(r"<link[^>]*font-awesome[^>]*>\s*", re.IGNORECASE)
_ICON = re.compile(r'<i class="fa ([^"]+)"></i>')


def offline_jshtml(html: str) -> str:
    """Rewrite ``to_jshtml()`` output so that it needs no network.

    Parameters
    ----------
    html : str
        What :meth:`matplotlib.animation.Animation.to_jshtml` returned.

    Returns
    -------
    str
        The same player without the Font Awesome stylesheet link, its icons replaced by
        Unicode symbols.

    Raises
    ------
    ValueError
        If an icon has no known replacement (a newer matplotlib changed its template).

    Examples
    --------
    >>> offline_jshtml('<link rel="stylesheet" href="https://x/font-awesome.min.css">'
    ...                '<button><i class="fa fa-play"></i></button>')
    '<button><span class="anim-icon">▶</span></button>'
    """

    def symbol(match: re.Match) -> str:
        icon = match.group(1)
        if icon not in _ICON_SYMBOLS:
            raise ValueError(f"no offline symbol for animation icon {icon!r}")
        return f'<span class="anim-icon">{_ICON_SYMBOLS[icon]}</span>'

    return _ICON.sub(symbol, _CDN_STYLESHEET.sub("", html))


def animation_html(anim: Animation, default_mode: str = "loop") -> HTML:
    """Return an animation as an offline HTML player for display in a notebook.

    Parameters
    ----------
    anim : matplotlib.animation.Animation
        The animation; its figure is closed afterwards so it is not drawn a second time.
    default_mode : {'loop', 'once', 'reflect'}
        The player's initial repetition mode.

    Returns
    -------
    IPython.display.HTML
        The player: every frame as an inline PNG, play/step buttons and a frame slider.
    """
    import matplotlib.pyplot as plt

    html = offline_jshtml(anim.to_jshtml(default_mode=default_mode))
    plt.close(anim._fig)
    return HTML(html)

// The book's own fixes to the theme's behaviour, on every page.
(function () {
  "use strict";

  // Sidebar toggles. pydata-sphinx-theme (and sphinx-book-theme's wide-screen fix) attach their
  // click handlers to the FIRST `.primary-toggle` / `.secondary-toggle` in the page, which is a
  // header button that sphinx-book-theme hides; the buttons a reader sees (in the article
  // header) had no handler. Each visible toggle now forwards its click to that first button.
  function forwardToggles(selector) {
    var toggles = document.querySelectorAll(selector);
    if (toggles.length < 2) return;
    var handled = toggles[0];
    toggles.forEach(function (button, index) {
      if (index === 0) return;
      button.addEventListener("click", function (event) {
        event.preventDefault();
        event.stopPropagation();
        handled.click();
        // Drop focus so that the button's tooltip does not stay on screen.
        button.blur();
        hideTooltip(button);
      });
    });
  }

  function hideTooltip(element) {
    var bs = window.bootstrap;
    if (bs && bs.Tooltip && bs.Tooltip.getInstance) {
      var tip = bs.Tooltip.getInstance(element);
      if (tip) tip.hide();
    }
  }

  // Search result snippets: Sphinx shows the text of the page around the match, where math is
  // raw TeX ("\(\sum_m \sum_n ...\)"). Simple formulas keep their letters; others become "…".
  var PLAIN_MATH = /^[A-Za-z0-9 _^+\-=*/(),.·≤≥→]*$/;
  var TEX_WORDS = {
    "\\times": "x", "\\cdot": "·", "\\le": "≤", "\\leq": "≤", "\\ge": "≥", "\\geq": "≥",
    "\\to": "→", "\\ell": "l", "\\,": " ", "\\;": " ", "\\left": "", "\\right": "",
  };
  function mathToText(tex) {
    var inner = tex
      .trim()
      .replace(/^\\\(|\\\)$/g, "")
      .replace(/^\\\[|\\\]$/g, "")
      .replace(/^\$\$?|\$\$?$/g, "")
      .replace(/\\[A-Za-z]+|\\[,;]/g, function (word) {
        return word in TEX_WORDS ? TEX_WORDS[word] : word;
      })
      .replace(/[{}]/g, "")
      .replace(/\s+/g, " ")
      .trim();
    return PLAIN_MATH.test(inner) ? inner.replace(/_/g, "") : "…";
  }

  function patchSearchSnippets() {
    if (typeof Search === "undefined" || !Search.htmlToText) return;
    var original = Search.htmlToText;
    Search.htmlToText = function (htmlString, anchor) {
      var doc = new DOMParser().parseFromString(htmlString, "text/html");
      doc.querySelectorAll("span.math, div.math").forEach(function (el) {
        el.replaceWith(doc.createTextNode(" " + mathToText(el.textContent) + " "));
      });
      return original(doc.documentElement.outerHTML, anchor);
    };
  }

  function ready() {
    forwardToggles(".primary-toggle");
    forwardToggles(".secondary-toggle");
    patchSearchSnippets();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ready);
  } else {
    ready();
  }
})();

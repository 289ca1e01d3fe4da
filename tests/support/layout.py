"""How a page's text is laid out, as the browser drew it: words cut between two lines,
and labels (a button's, a link's, a heading's) drawn on more than one line.

Each is measured from the rectangles a Range over the text gets (one per line it spans),
so what is checked is what the viewer sees, whatever CSS made it.
"""

from __future__ import annotations

from playwright.sync_api import Page

# The lines a text node's range, or each of its words', is drawn on: their rectangles'
# distinct tops (a wrapped run gets one rectangle per line).
_LINES = """
function linesOf(range) {
  const tops = new Set();
  for (const rect of range.getClientRects()) {
    if (rect.width > 0 && rect.height > 0) tops.add(Math.round(rect.top));
  }
  return tops.size;
}
function shown(element) {
  return element.getClientRects().length > 0
    && getComputedStyle(element).visibility !== "hidden";
}
function textNodes(element) {
  const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
  const found = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) found.push(node);
  return found;
}
"""


def broken_words(page: Page, selector: str, unless: str = ".id") -> list[str]:
    """The words, in the shown elements of `selector`, drawn across two lines or more:
    cut mid-word, not after a hyphen (svc-etl may end a line at `svc-`); text inside
    `unless` (ids, which have no spaces to break at) may be."""
    return list(page.evaluate("""
        ([selector, unless]) => {""" + _LINES + """
          const broken = [];
          for (const element of document.querySelectorAll(selector)) {
            if (!shown(element)) continue;
            for (const node of textNodes(element)) {
              if (unless && node.parentElement.closest(unless)) continue;
              // A word, or its part up to a hyphen (where a line may end).
              for (const match of node.data.matchAll(/[^\\s-]+-?|-/g)) {
                const range = document.createRange();
                range.setStart(node, match.index);
                range.setEnd(node, match.index + match[0].length);
                if (linesOf(range) > 1) broken.push(match[0]);
              }
            }
          }
          return broken;
        }""", [selector, unless]))


def wrapped_labels(page: Page, selector: str) -> list[str]:
    """The texts of the shown elements of `selector` drawn on more than one line."""
    return list(page.evaluate("""
        (selector) => {""" + _LINES + """
          const wrapped = [];
          for (const element of document.querySelectorAll(selector)) {
            if (!shown(element) || !element.textContent.trim()) continue;
            const range = document.createRange();
            range.selectNodeContents(element);
            if (linesOf(range) > 1) wrapped.push(element.textContent.trim());
          }
          return wrapped;
        }""", selector))


def overflowing(page: Page) -> bool:
    """Whether the page is wider than its viewport (a sideways scroll)."""
    return bool(page.evaluate(
        "document.documentElement.scrollWidth > document.documentElement.clientWidth"))

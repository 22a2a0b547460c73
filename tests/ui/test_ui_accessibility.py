"""Every page can be used with labels and the keyboard: each control has an accessible
name, and Tab reaches every enabled control in order, starting from the navigation."""

from __future__ import annotations

from typing import Any

from test_ui_security import pages

UNNAMED_CONTROLS = """() => {
  const unnamed = [];
  for (const el of document.querySelectorAll('input, select, textarea, button')) {
    if (el.type === 'hidden' || el.closest('[hidden]')) continue;
    const labelled = (el.labels && el.labels.length > 0)
      || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby')
      || (el.tagName === 'BUTTON' && el.textContent.trim())
      || (el.type === 'submit' && el.value);
    if (!labelled) unnamed.push(el.outerHTML.slice(0, 120));
  }
  return unnamed;
}"""

FOCUSABLE = """() => Array.from(document.querySelectorAll(
  'a[href], input:not([type=hidden]):not([disabled]), select:not([disabled]),'
  + ' textarea:not([disabled]), button:not([disabled])'
)).filter(el => el.offsetParent !== null && !el.closest('[hidden]')).length"""


ACTIVE_TAG = "() => document.activeElement && document.activeElement.tagName"


def test_every_control_on_every_page_has_a_label(page: Any, ui_node: Any) -> None:
    if ui_node.client.chain_info()["height"] == 0:
        ui_node.mine(1)  # so that block and tx pages exist
    for path in pages(ui_node):
        page.goto(ui_node.url + path)
        page.wait_for_load_state("networkidle")
        assert page.evaluate(UNNAMED_CONTROLS) == [], f"controls without a label on {path}"


def test_tab_walks_from_the_navigation_through_the_page(page: Any, ui_node: Any) -> None:
    for path in ("/", "/upload", "/wallet", "/explorer", "/audit"):
        page.goto(ui_node.url + path)
        page.wait_for_load_state("networkidle")
        reachable = page.evaluate(FOCUSABLE)
        seen = []
        for _ in range(min(reachable, 40)):
            page.keyboard.press("Tab")
            seen.append(
                page.evaluate("() => document.activeElement && document.activeElement.tagName")
            )
        assert seen[0] == "A", f"Tab does not start at the navigation on {path}: {seen[:3]}"
        on_page = set(seen) - {"A", "BODY"}
        if path in ("/upload", "/wallet", "/audit", "/"):
            assert on_page & {"INPUT", "SELECT", "TEXTAREA", "BUTTON"}, (
                f"Tab never reaches a form control on {path}: {seen}"
            )

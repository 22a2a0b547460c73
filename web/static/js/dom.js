// Building page elements without innerHTML: every text goes in through textContent.

/**
 * el("a", { href, class, text }, ...children): an element with its attributes (`class` and
 * `text` are the className and textContent) and children; null, undefined and false
 * children are left out, so `condition && el(...)` reads as it should.
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

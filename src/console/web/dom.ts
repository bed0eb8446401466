/** A tiny element builder: the console is a handful of tables and forms, no framework needed. */
type Child = Node | string | number | null | undefined | false;
type Props = Record<string, string | number | boolean | ((event: Event) => void) | undefined>;

export function h(tag: string, props: Props = {}, ...children: (Child | Child[])[]): HTMLElement {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === false) continue;
    if (typeof value === "function") element.addEventListener(key.replace(/^on/, ""), value);
    else if (value === true) element.setAttribute(key, "");
    else element.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(typeof child === "object" ? child : String(child));
  }
  return element;
}

export function replace(target: Element, ...children: (Child | Child[])[]): void {
  target.replaceChildren(
    ...children
      .flat()
      .filter((c): c is Node | string => c !== null && c !== undefined && c !== false)
      .map((c) => (typeof c === "number" ? String(c) : c)),
  );
}

export function time(iso: string | null | undefined): string {
  if (!iso) return "";
  const date = new Date(iso);
  return `${date.toLocaleDateString("en-CA")} ${date.toLocaleTimeString("en-GB")}`;
}

export function signed(amount: number): HTMLElement {
  return h("span", { class: amount < 0 ? "neg" : "pos" }, amount > 0 ? `+${amount}` : String(amount));
}

export function notice(text: string, error = false): HTMLElement {
  return h("p", { class: error ? "notice error" : "notice", role: error ? "alert" : "status" }, text);
}

import { type Access, closeLive, GraphqlError, gql, subjectOf, takeTokenFromUrl, token } from "./api.js";
import { deliveriesPage } from "./deliveries-page.js";
import { h, notice, replace } from "./dom.js";
import { healthPage } from "./health-page.js";
import type { PageContext } from "./page.js";
import { userPage } from "./user-page.js";

/**
 * The operator console: hash routes (#/users, #/user/<id>, #/deliveries, #/health), each a function
 * that fills <main> and returns a clean-up for what it keeps open (a live subscription).
 */

type Page = (context: PageContext, param: string) => (() => void) | undefined;

const ROUTES: Record<string, { title: string; page: Page }> = {
  users: { title: "Users", page: usersPage },
  user: { title: "User", page: userPage },
  deliveries: { title: "Deliveries", page: deliveriesPage },
  health: { title: "Health", page: healthPage },
};

const root = document.getElementById("app") as HTMLElement;
let cleanUp: (() => void) | undefined;
let access: Access | undefined;

function signIn(message?: string): void {
  closeLive();
  access = undefined;
  const input = h("textarea", { id: "token", rows: 4, cols: 70, required: true, "aria-label": "Token" });
  const form = h(
    "form",
    {
      onsubmit: (event) => {
        event.preventDefault();
        token.set((input as HTMLTextAreaElement).value);
        location.hash = "#/users";
        void render();
      },
    },
    h("label", { for: "token" }, "An admin's token (tokens:admin, or tokens:read for read-only)"),
    input,
    h("p", {}, h("button", { type: "submit" }, "Sign in")),
  );
  replace(
    root,
    h(
      "main",
      {},
      h("h1", {}, "token-ledger console: sign in"),
      message ? notice(message, true) : null,
      h(
        "p",
        { class: "muted" },
        "Open the URL printed by ",
        h("code", {}, "npm run token -- <id> --admin --console"),
        ", or paste a token from your identity provider.",
      ),
      form,
    ),
  );
  input.focus();
}

function signOut(): void {
  token.clear();
  signIn();
}

function layout(route: string, who: string): HTMLElement {
  const link = (name: string, label: string) =>
    h("a", { href: `#/${name}`, "aria-current": route === name ? "page" : undefined }, label);
  const signOutButton = h("button", { class: "secondary", type: "button", onclick: signOut }, "Sign out");
  const main = h("main", { id: "main", tabindex: -1 });
  replace(
    root,
    h(
      "header",
      {},
      h("strong", {}, "token-ledger"),
      h(
        "nav",
        { "aria-label": "Pages" },
        link("users", "Users"),
        link("deliveries", "Deliveries"),
        link("health", "Health"),
      ),
      h("span", { class: "who" }, `${who} · ${access === "admin" ? "admin" : "read-only"}`),
      signOutButton,
    ),
    main,
  );
  return main;
}

async function render(): Promise<void> {
  cleanUp?.();
  cleanUp = undefined;
  const jwt = token.get();
  if (!jwt) return signIn();
  if (!access) {
    try {
      access = (await gql<{ consoleAccess: Access }>("query ConsoleAccess { consoleAccess }")).consoleAccess;
    } catch (error) {
      token.clear();
      const refused =
        error instanceof GraphqlError && (error.code === "FORBIDDEN" || error.code === "UNAUTHENTICATED");
      return signIn(refused ? `Refused: ${error.message}` : `Could not sign in: ${String(error)}`);
    }
  }
  const [, name = "users", ...rest] = location.hash.replace(/^#/, "").split("/");
  const route = ROUTES[name] ? name : "users";
  const entry = ROUTES[route] as (typeof ROUTES)[string];
  document.title = `${entry.title} · token-ledger console`;
  const main = layout(route, subjectOf(jwt));
  // Keyboard and screen-reader users land on the new page's content, not on the old link.
  main.focus();
  cleanUp = entry.page({ access, main }, decodeURIComponent(rest.join("/")));
}

function usersPage({ main }: PageContext): undefined {
  const input = h("input", {
    id: "user-search",
    name: "userId",
    required: true,
    size: 48,
    autocomplete: "off",
  });
  replace(
    main,
    h("h1", {}, "Find a user"),
    h(
      "form",
      {
        class: "inline",
        role: "search",
        onsubmit: (event) => {
          event.preventDefault();
          location.hash = `#/user/${encodeURIComponent((input as HTMLInputElement).value.trim())}`;
        },
      },
      h("label", {}, "User id (the app_user_id)", input),
      h("button", { type: "submit" }, "Open"),
    ),
    h("p", { class: "muted" }, "Deliveries that need attention name their users; open one from there too."),
  );
  input.focus();
  return undefined;
}

takeTokenFromUrl();
window.addEventListener("hashchange", () => {
  // A new sign-in URL opened in this tab: forget what the old token could do.
  if (takeTokenFromUrl()) {
    closeLive();
    access = undefined;
  }
  void render();
});
void render();

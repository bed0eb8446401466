import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import { isStorableText } from "../../db/text.js";
import { pickAttribute, type SourceItem } from "./legacy-source.js";
import type { LegacyAttribute } from "./legacy-value.js";
import { type RevenuecatApi, RevenuecatApiError } from "./revenuecat-api.js";

/**
 * Reads customers through RevenueCat's API v2 for a file of app user ids (one a line; blank lines and
 * `#` comments skipped). Aliased ids resolve to one customer with one set of attributes, so each
 * customer is named by the least of its ids (the same whichever alias the file lists) and read once:
 * a later alias in the file is reported as such.
 */
export async function* readCustomersFromApi(
  api: RevenuecatApi,
  idsPath: string,
  attributeName: string,
  /** How many ids are read at once; the API client paces the requests themselves. */
  parallel = 8,
): AsyncGenerator<SourceItem> {
  const seen = new Map<string, string>();
  let pending: Promise<SourceItem>[] = [];
  for await (const id of readIds(idsPath)) {
    pending.push(readCustomer(api, id, attributeName));
    if (pending.length >= parallel) {
      yield* settle(await Promise.all(pending), seen);
      pending = [];
    }
  }
  yield* settle(await Promise.all(pending), seen);
}

function* settle(items: SourceItem[], seen: Map<string, string>): Generator<SourceItem> {
  for (const item of items) {
    if (item.kind !== "customer") {
      yield item;
      continue;
    }
    const { customerId, userId } = item.customer;
    const first = seen.get(customerId);
    if (first !== undefined) {
      yield { kind: "alias", id: userId, customerId };
      continue;
    }
    seen.set(customerId, userId);
    yield item;
  }
}

async function readCustomer(api: RevenuecatApi, id: string, attributeName: string): Promise<SourceItem> {
  if (!isStorableText(id) || id.length > 255)
    return { kind: "unreadable", id, reason: "not a storable user id" };
  try {
    const aliases = await api.aliases(id);
    if (aliases === null) return { kind: "not-found", id };
    const attributes = await api.attributes(id);
    if (attributes === null) return { kind: "not-found", id };
    const byName = new Map<string, LegacyAttribute>(
      attributes.map((item) => [item.name, { raw: item.value, updatedAtMs: item.updatedAt }]),
    );
    const { attribute, nearMatches } = pickAttribute(byName, attributeName);
    const customerId = [id, ...aliases].sort()[0] as string;
    return { kind: "customer", customer: { customerId, userId: id, attribute, nearMatches } };
  } catch (error) {
    const reason = error instanceof RevenuecatApiError ? error.message : String(error);
    return { kind: "unreadable", id, reason };
  }
}

async function* readIds(path: string): AsyncGenerator<string> {
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Number.POSITIVE_INFINITY });
  for await (const line of lines) {
    const id = line.trim();
    if (id && !id.startsWith("#")) yield id;
  }
}

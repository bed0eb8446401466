import { describe, expect, it } from "vitest";
import { signDevToken } from "../../src/auth/jwt.js";
import { JWT_SECRET, newUserId, useTestApp } from "../helpers/app.js";
import { driverName } from "../helpers/database.js";
import { deliver, fixture } from "../helpers/revenuecat.js";

const t = useTestApp({ PRODUCT_TOKEN_MAP: JSON.stringify({ "2100_tokens": 2100, token_pack_small: 100 }) });

const readOnly = () =>
  signDevToken({ secret: JWT_SECRET, userId: "auditor", readOnly: true, expiresIn: "10m" });

const READS = [
  "query { consoleAccess }",
  'query { userBalance(userId: "u") { balance } }',
  'query { userTransactions(userId: "u") { amount } }',
  'query { userLots(userId: "u") { remaining } }',
  "query { webhookDeliveries { eventId } }",
  'query { webhookDelivery(eventId: "e") { rawBody } }',
  "query { serviceHealth { at } }",
];

describe(`the console's GraphQL, on ${driverName}`, () => {
  it("refuses every operator read to a plain user, and every write to a read-only operator", async () => {
    const userId = newUserId();
    const user = await t.token(userId);
    const grant = `mutation { grantTokens(input: { userId: "${userId}", amount: 3, reason: "setup" }) { success } }`;
    await t.gql(grant, {}, await t.token("admin", { admin: true }));
    for (const query of READS) {
      const result = await t.gql(query, {}, user);
      expect(result.errors?.[0]?.extensions?.code, query).toBe("FORBIDDEN");
    }
    const auditor = await readOnly();
    for (const query of READS) expect((await t.gql(query, {}, auditor)).errors, query).toBeUndefined();
    expect((await t.gql<{ consoleAccess: string }>("query { consoleAccess }", {}, auditor)).data).toEqual({
      consoleAccess: "read",
    });
    const writes = [
      'mutation { reprocessWebhookDelivery(eventId: "e") { eventId } }',
      'mutation { grantTokens(input: { userId: "u", amount: 1, reason: "r" }) { success } }',
    ];
    for (const query of writes) {
      expect((await t.gql(query, {}, auditor)).errors?.[0]?.extensions?.code, query).toBe("FORBIDDEN");
    }
    // The plain user's entries do not show operator fields either.
    const own = await t.gql("query { transactions { edges { node { lineage { story } } } } }", {}, user);
    expect(own.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
  });

  it("refuses oversized pages and the GraphQL abuse limits apply", async () => {
    const admin = await t.token("admin", { admin: true });
    const big = await t.gql('query { userTransactions(userId: "u", first: 101) { amount } }', {}, admin);
    expect(big.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
    const many = await t.gql("query { webhookDeliveries(first: 500) { eventId } }", {}, admin);
    expect(many.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
    const aliases = Array.from({ length: 12 }, (_, i) => `a${i}: userBalance(userId: "u${i}") { balance }`);
    const aliased = await t.gql(`query { ${aliases.join(" ")} }`, {}, admin);
    expect(aliased.data).toBeUndefined();
    expect(aliased.errors?.[0]?.message).toMatch(/alias/i);
  });

  it("tells each entry's story: a purchase, a refund's shortfall, an adjustment by whom and why", async () => {
    const admin = await t.token("support-7", { admin: true });
    const userId = newUserId();
    const bought = fixture("NON_RENEWING_PURCHASE__rc-docs", { app_user_id: userId });
    await deliver(t.url, bought);
    const spend = `mutation { spendTokens(input: { amount: 2000, description: "Armour" }) { success } }`;
    await t.gql(spend, {}, await t.token(userId));
    const refund = fixture("CANCELLATION__rc-docs-refund", {
      app_user_id: userId,
      transaction_id: bought.event.transaction_id,
      store: bought.event.store,
    });
    await deliver(t.url, refund);
    const adjust = `mutation { adjustTokens(input: { userId: "${userId}", amount: 5, reason: "Apology for outage" }) { success } }`;
    await t.gql(adjust, {}, admin);
    const read = await t.gql<{
      userTransactions: { kind: string; lineage: Record<string, unknown> }[];
    }>(
      `query($u: ID!) { userTransactions(userId: $u) { kind lineage { story actor reason eventId refundedTokens recoveredTokens shortfallTokens relatedEntryId storeTransactionId } } }`,
      { u: userId },
      admin,
    );
    const [adjusted, refunded, spent, purchased] = read.data?.userTransactions ?? [];
    expect(adjusted?.lineage).toMatchObject({
      actor: "support-7",
      reason: "Apology for outage",
      story: "Adjusted up 5 tokens by support-7: Apology for outage",
    });
    expect(refunded?.lineage).toMatchObject({
      eventId: refund.event.id,
      refundedTokens: 2100,
      recoveredTokens: 100,
      shortfallTokens: 2000,
      storeTransactionId: String(bought.event.transaction_id),
    });
    expect(refunded?.lineage.relatedEntryId).toEqual(expect.any(Number));
    expect(spent?.lineage.story).toBe("Spent 2000 tokens on Armour");
    expect(purchased?.lineage).toMatchObject({ eventId: bought.event.id, shortfallTokens: null });

    // Paged by entry number, newest first.
    const page = `query($u: ID!, $o: Int) { userTransactions(userId: $u, first: 2, olderThanEntry: $o) { entryId kind } }`;
    const first = await t.gql<{ userTransactions: { entryId: number; kind: string }[] }>(
      page,
      { u: userId },
      admin,
    );
    const next = await t.gql<{ userTransactions: { entryId: number; kind: string }[] }>(
      page,
      { u: userId, o: first.data?.userTransactions.at(-1)?.entryId },
      admin,
    );
    expect(first.data?.userTransactions.map((e) => e.kind)).toEqual(["ADJUSTMENT", "REFUND"]);
    expect(next.data?.userTransactions.map((e) => e.kind)).toEqual(["SPEND", "PURCHASE"]);
  });

  it("filters deliveries by outcome, held purchases included, and by user", async () => {
    const admin = await t.token("admin", { admin: true });
    const userId = newUserId();
    const bought = fixture("NON_RENEWING_PURCHASE__rc-docs", {
      app_user_id: userId,
      product_id: "token_pack_small",
    });
    const early = fixture("CANCELLATION__rc-docs-refund", {
      app_user_id: userId,
      transaction_id: bought.event.transaction_id,
      store: bought.event.store,
    });
    await deliver(t.url, early);
    expect((await deliver(t.url, bought)).body.outcome).toBe("held");
    const unmapped = fixture("NON_RENEWING_PURCHASE__rc-docs", { app_user_id: userId, product_id: "nope" });
    await deliver(t.url, unmapped);
    const list = async (filter: string) => {
      const result = await t.gql<{ webhookDeliveries: { eventId: string; held: boolean }[] }>(
        "query($f: WebhookDeliveryFilter, $u: ID) { webhookDeliveries(filter: $f, userId: $u) { eventId held } }",
        { f: filter, u: userId },
        admin,
      );
      return result.data?.webhookDeliveries.map((d) => d.eventId).sort();
    };
    expect(await list("held")).toEqual([bought.event.id]);
    expect(await list("ignored")).toEqual([]);
    expect(await list("unmatched")).toEqual([early.event.id]);
    expect(await list("attention")).toEqual([bought.event.id, unmapped.event.id].sort());
    expect(await list("unmapped")).toEqual([unmapped.event.id]);
  });

  it("keeps an hour of health numbers: purchases, API response times, webhook latency, failed spends", async () => {
    const admin = await t.token("admin", { admin: true });
    const userId = newUserId();
    await deliver(t.url, fixture("NON_RENEWING_PURCHASE__rc-docs", { app_user_id: userId }));
    await t.gql(
      `mutation { spendTokens(input: { amount: 99999, description: "x" }) { success } }`,
      {},
      await t.token(userId),
    );
    const result = await t.gql<{ serviceHealth: Record<string, number | null>[] }>(
      "query { serviceHealth { purchaseSuccessRate purchases apiMeanMs apiRequests webhookMeanMs failedSpendRate spends } }",
      {},
      admin,
    );
    const now = result.data?.serviceHealth.at(-1);
    expect(now?.purchases).toBeGreaterThanOrEqual(1);
    expect(now?.purchaseSuccessRate).toBeGreaterThan(0);
    expect(now?.apiRequests).toBeGreaterThanOrEqual(2);
    expect(now?.apiMeanMs).toBeGreaterThan(0);
    expect(now?.webhookMeanMs).toBeGreaterThan(0);
    expect(now?.spends).toBeGreaterThanOrEqual(1);
    expect(now?.failedSpendRate).toBeGreaterThan(0);
  });
});

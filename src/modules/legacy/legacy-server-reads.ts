import type { PurchaseCredits } from "../ledger/ledger.queries.js";
import type { LedgerFacts, LegacyLedgerReads } from "./legacy-ledger-reads.js";

const FACTS = `query LegacyImportFacts($customerIds: [String!]!, $userIds: [String!]!, $since: DateTime, $until: DateTime!) {
  legacyImportFacts(customerIds: $customerIds, userIds: $userIds, purchasesSince: $since, purchasesUntil: $until) {
    imported { customerId importedAt }
    purchases { userId allTokens windowTokens }
  }
}`;

interface FactsBody {
  data?: {
    legacyImportFacts: {
      imported: { customerId: string; importedAt: string }[];
      purchases: (PurchaseCredits & { userId: string })[];
    };
  } | null;
  errors?: { message: string }[];
}

/**
 * The ledger reads of a dry run, asked of the server that holds the embedded database (its
 * admin-only `legacyImportFacts` query): the same reads the import makes on a database it opens
 * itself, and nothing that writes.
 */
export function serverReads(url: string, adminToken: string): LegacyLedgerReads {
  return {
    async facts(customerIds, userIds, window): Promise<LedgerFacts> {
      const response = await fetch(`${url}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${adminToken}` },
        body: JSON.stringify({
          query: FACTS,
          variables: {
            customerIds,
            userIds,
            since: window.since?.toISOString() ?? null,
            until: window.until.toISOString(),
          },
        }),
      });
      const body = (await response.json()) as FactsBody;
      const facts = body.data?.legacyImportFacts;
      if (!facts) {
        const why = body.errors?.map((error) => error.message).join("; ") ?? `HTTP ${response.status}`;
        throw new Error(`the server at ${url} refused the ledger lookup: ${why}`);
      }
      return {
        imported: new Map(facts.imported.map((row) => [row.customerId, new Date(row.importedAt)])),
        purchases: new Map(
          facts.purchases.map(({ userId, allTokens, windowTokens }) => [userId, { allTokens, windowTokens }]),
        ),
      };
    },
  };
}

/**
 * Counts the 5xx answers of a running server to hostile input: GraphQL documents that do not parse or
 * validate, and random variables, REST bodies and webhook events (fast-check's generators, as in
 * test/hostile-input.test.ts). Used for the before/after figure of the npm start bundle's masked 500s.
 *
 *   npx tsx test/http/scripts/hostile-5xx.ts http://127.0.0.1:PORT [requests=10500]
 * The server must run with the test secrets (test/helpers/app.ts), e.g. `JWT_SECRET=... npm start`.
 */
import fc from "fast-check";
import { signDevToken } from "../../../src/auth/jwt.js";
import { JWT_SECRET, newUserId, WEBHOOK_SECRET } from "../../helpers/app.js";

const [url = "", count = "10500"] = process.argv.slice(2);
const token = await signDevToken({ secret: JWT_SECRET, userId: newUserId(), expiresIn: "1h" });
const text = fc.oneof(fc.string({ unit: "binary", maxLength: 40 }), fc.string({ maxLength: 40 }));
const loose = fc.oneof(
  text,
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.jsonValue({ maxDepth: 3 }),
);
const requests = fc.oneof(
  fc.record({
    door: fc.constant("graphql-text"),
    query: fc.oneof(text, fc.constantFrom("{", "query { balance { nope } }", "mutation {")),
  }),
  fc.record({ door: fc.constant("graphql-spend"), amount: loose, description: loose, key: loose }),
  fc.record({ door: fc.constant("rest-spend"), body: fc.oneof(fc.jsonValue({ maxDepth: 3 }), text) }),
  fc.record({
    door: fc.constant("webhook"),
    event: fc.dictionary(fc.constantFrom("id", "type", "app_user_id", "product_id"), loose),
  }),
);

function send(input: Record<string, unknown>): Promise<Response> {
  const headers = { "content-type": "application/json", authorization: `Bearer ${token}` };
  switch (input.door) {
    case "graphql-text":
      return fetch(`${url}/graphql`, {
        method: "POST",
        headers,
        body: JSON.stringify({ query: input.query }),
      });
    case "graphql-spend": {
      const query = "mutation S($input: SpendTokensInput!) { spendTokens(input: $input) { success } }";
      const variables = {
        input: { amount: input.amount, description: input.description, idempotencyKey: input.key },
      };
      return fetch(`${url}/graphql`, { method: "POST", headers, body: JSON.stringify({ query, variables }) });
    }
    case "rest-spend": {
      const body = typeof input.body === "string" ? input.body : JSON.stringify(input.body);
      return fetch(`${url}/api/v1/tokens/spend`, { method: "POST", headers, body });
    }
    default:
      return fetch(`${url}/api/v1/tokens/webhook/revenuecat`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${WEBHOOK_SECRET}` },
        body: JSON.stringify({ api_version: "1.0", event: input.event }),
      });
  }
}

const statuses: Record<string, number> = {};
const samples = fc.sample(requests, { numRuns: Number(count), seed: 16 });
for (let i = 0; i < samples.length; i += 8) {
  await Promise.all(
    samples.slice(i, i + 8).map(async (input) => {
      const response = await send(input as Record<string, unknown>);
      await response.arrayBuffer();
      statuses[response.status] = (statuses[response.status] ?? 0) + 1;
    }),
  );
}
const fivexx = Object.entries(statuses).reduce(
  (sum, [status, n]) => sum + (Number(status) >= 500 ? n : 0),
  0,
);
console.log(JSON.stringify({ url, requests: samples.length, fivexx, statuses }));

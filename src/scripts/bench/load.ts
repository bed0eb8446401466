import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import autocannon from "autocannon";

/**
 * The benchmark's load generator, in a process of its own so the orchestrator's work never shares
 * the server's event loop or its measurements. Reads a scenario from BENCH_LOAD (JSON), runs
 * autocannon for its seconds, and prints one JSON line with what it measured.
 */
export interface LoadSpec {
  readonly scenario: Scenario;
  readonly url: string;
  readonly seconds: number;
  /** Send exactly this many requests instead of running for `seconds`. */
  readonly amount?: number;
  readonly connections: number;
  /** A JSON file holding the users' tokens (signed once by the orchestrator). */
  readonly tokensFile?: string;
  readonly webhookSecret?: string;
}

export type Scenario = "hello" | "spend-spread" | "spend-hot" | "webhook" | "balance";

export interface LoadResult {
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly requests: number;
  /** Requests answered other than as the scenario expects (non-2xx, or a 200 that did not succeed). */
  readonly wrong: number;
}

const SPEND = JSON.stringify(
  "mutation Spend($input: SpendTokensInput!) { spendTokens(input: $input) { success newBalance errorCode } }",
);

type Request = { path: string; method: "GET" | "POST"; body?: string; headers: Record<string, string> };

/** What each scenario sends, request by request. */
function requests(spec: LoadSpec): {
  make: (i: number) => Request;
  ok: (status: number, body: string) => boolean;
} {
  const tokens = spec.tokensFile ? (JSON.parse(readFileSync(spec.tokensFile, "utf8")) as string[]) : [];
  const bearer = (i: number) => ({ authorization: `Bearer ${tokens[i % tokens.length]}` });
  const spendBody = (i: number) =>
    `{"query":${SPEND},"variables":{"input":{"amount":1,"description":"bench ${i}"}}}`;
  const spent = (status: number, body: string) => status === 200 && body.includes('"success":true');
  switch (spec.scenario) {
    case "hello":
      return {
        make: (i) => ({
          path: "/graphql",
          method: "POST",
          body: `{"query":"mutation H($n: String!) { hello(name: $n) }","variables":{"n":"n${i}"}}`,
          headers: {},
        }),
        ok: (status) => status === 200,
      };
    case "spend-spread":
      return {
        make: (i) => ({ path: "/graphql", method: "POST", body: spendBody(i), headers: bearer(i) }),
        ok: spent,
      };
    case "spend-hot":
      return {
        make: (i) => ({ path: "/graphql", method: "POST", body: spendBody(i), headers: bearer(0) }),
        ok: spent,
      };
    case "balance":
      return {
        make: (i) => ({
          path: "/graphql",
          method: "POST",
          body: '{"query":"{ balance { balance version } }"}',
          headers: bearer(i),
        }),
        ok: (status, body) => status === 200 && body.includes('"version"'),
      };
    case "webhook":
      return {
        make: (i) => ({
          path: "/api/v1/tokens/webhook/revenuecat",
          method: "POST",
          body: purchaseBody(i),
          headers: { authorization: `Bearer ${spec.webhookSecret}` },
        }),
        ok: (status, body) => status === 200 && body.includes('"credited"'),
      };
  }
}

/** A distinct RevenueCat delivery: a token pack bought by one of 10,000 buyers. */
function purchaseBody(i: number): string {
  const buyer = `bench-buyer-${i % 10_000}`;
  return JSON.stringify({
    api_version: "1.0",
    event: {
      id: randomUUID(),
      type: "NON_RENEWING_PURCHASE",
      app_user_id: buyer,
      aliases: [buyer],
      original_app_user_id: buyer,
      product_id: "token_pack_small",
      transaction_id: `bench-${randomUUID()}`,
      store: "APP_STORE",
      environment: "PRODUCTION",
      price: 0.99,
      currency: "USD",
      purchased_at_ms: Date.now(),
      event_timestamp_ms: Date.now(),
      subscriber_attributes: { $email: { value: "buyer@example.com", updated_at_ms: 1 } },
    },
  });
}

export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const { make, ok } = requests(spec);
  let counter = 0;
  let wrong = 0;
  const result = await autocannon({
    url: spec.url,
    connections: spec.connections,
    ...(spec.amount ? { amount: spec.amount } : { duration: spec.seconds }),
    requests: [
      {
        setupRequest: (request) => {
          const made = make(counter++);
          return {
            ...request,
            path: made.path,
            method: made.method,
            body: made.body,
            headers: { "content-type": "application/json", ...made.headers },
          };
        },
        onResponse: (status, body) => {
          if (!ok(status, body)) wrong += 1;
        },
      },
    ],
  });
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    requests: result.requests.total,
    wrong: wrong + result.errors,
  };
}

if (process.argv[1]?.endsWith("load.ts")) {
  const spec = JSON.parse(process.env.BENCH_LOAD as string) as LoadSpec;
  runLoad(spec).then(
    (result) => process.stdout.write(`${JSON.stringify(result)}\n`),
    (error: unknown) => {
      process.stderr.write(`${String(error)}\n`);
      process.exit(1);
    },
  );
}

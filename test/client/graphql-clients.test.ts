import { ApolloClient, ApolloLink, gql, HttpLink, InMemoryCache } from "@apollo/client";
import { GraphQLWsLink } from "@apollo/client/link/subscriptions";
import { getMainDefinition } from "@apollo/client/utilities";
import { Client, cacheExchange, type Exchange, fetchExchange, subscriptionExchange } from "@urql/core";
import { cacheExchange as graphcache } from "@urql/exchange-graphcache";
import { createClient as createWsClient } from "graphql-ws";
import { afterEach, describe, expect, it, vi } from "vitest";
import { pipe, subscribe } from "wonka";
import WebSocket from "ws";
import { driverName } from "../helpers/database.js";
import { disposeClientsAfterEach, makeClient, record, until } from "./helpers/clients.js";
import { useLedgerServer } from "./helpers/ledger-server.js";

/** docs/app-integration.md's operations, as an app using a general GraphQL client would write them. */
const BALANCE = "query Balance { balance { id balance version lastUpdated } }";
const SPEND = `mutation Spend($input: SpendTokensInput!) {
  spendTokens(input: $input) {
    success newBalance errorCode
    transaction { id amount idempotencyKey }
    balance { id balance version lastUpdated }
  }
}`;
const TRANSACTIONS = `query Transactions($first: Int, $after: String) {
  transactions(first: $first, after: $after) {
    edges { cursor node { id amount kind } }
    pageInfo { hasNextPage endCursor }
  }
}`;
const BALANCE_CHANGED = `subscription BalanceChanged {
  balanceChanged {
    balance delta version
    current { id balance version lastUpdated }
    transaction { id amount kind idempotencyKey }
  }
}`;

interface Spent {
  spendTokens: { success: boolean; newBalance: number; transaction: { id: string; idempotencyKey: string } };
}
interface Page {
  transactions: {
    edges: { node: { amount: number; kind: string } }[];
    pageInfo: { hasNextPage: boolean; endCursor: string | null };
  };
}
interface Change {
  balanceChanged: { balance: number; delta: number; transaction: { idempotencyKey: string | null } | null };
}

const server = useLedgerServer();
disposeClientsAfterEach();
const closers: (() => unknown)[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  await Promise.all(closers.splice(0).map((close) => close()));
});

/** Resolves once `values` holds an item passing `test`. */
async function seen<T>(values: T[], test: (value: T) => boolean): Promise<T> {
  await expect.poll(() => values.some(test), { timeout: 20_000 }).toBe(true);
  return values.find(test) as T;
}

/** Pages the user's entries two at a time with `page(after)`, newest first. */
async function allEntries(page: (after: string | null) => Promise<Page>): Promise<[string, number][]> {
  const entries: [string, number][] = [];
  let after: string | null = null;
  for (;;) {
    const { transactions } = await page(after);
    entries.push(...transactions.edges.map(({ node }): [string, number] => [node.kind, node.amount]));
    if (!transactions.pageInfo.hasNextPage) return entries;
    after = transactions.pageInfo.endCursor;
  }
}

/** Balance queries that reached the network (urql sends queries as GET, Apollo as POST). */
function balanceRequests(spy: { mock: { calls: unknown[][] } }): number {
  return spy.mock.calls.filter(([input, init]) => {
    const url = decodeURIComponent(String(input).replace(/\+/g, " "));
    return `${url} ${String((init as { body?: unknown } | undefined)?.body ?? "")}`.includes("query Balance");
  }).length;
}

function graphqlWs(authorization: string) {
  const ws = createWsClient({
    url: server.graphqlUrl.replace(/^http/, "ws"),
    webSocketImpl: WebSocket,
    connectionParams: { authorization },
  });
  closers.push(() => ws.dispose());
  return ws;
}

function urqlClient(authorization: string, cache: Exchange): Client {
  const ws = graphqlWs(authorization);
  return new Client({
    url: server.graphqlUrl,
    fetchOptions: () => ({ headers: { authorization } }),
    exchanges: [
      cache,
      fetchExchange,
      subscriptionExchange({
        forwardSubscription: (request) => ({
          subscribe: (sink) => ({
            unsubscribe: ws.subscribe({ ...request, query: request.query ?? "" }, sink),
          }),
        }),
      }),
    ],
  });
}

describe(`the documented flow from three clients on ${driverName}`, () => {
  it("@token-ledger/client", async () => {
    const { token } = await server.fundUser(100);
    const client = makeClient(server, token);
    expect(await client.getBalance()).toMatchObject({ balance: 100, version: 1 });
    record(client);
    await until(client, (state) => state.live);
    const spent = await client.spendTokens({
      amount: 10,
      description: "Premium feature",
      idempotencyKey: "order-42",
    });
    expect(spent).toMatchObject({ success: true, newBalance: 90, idempotencyKey: "order-42" });
    const replay = await client.spendTokens({
      amount: 10,
      description: "Premium feature",
      idempotencyKey: "order-42",
    });
    expect(replay.transaction?.id).toBe(spent.transaction?.id);
    expect(await until(client, (state) => state.version === 2)).toMatchObject({ balance: 90, pending: 0 });
    const entries = await allEntries(async (after) => {
      const page = await client.transactions({ first: 2, after });
      const edges = page.entries.map((node) => ({ node }));
      return {
        transactions: { edges, pageInfo: { hasNextPage: page.hasNextPage, endCursor: page.endCursor } },
      };
    });
    expect(entries).toEqual([
      ["SPEND", -10],
      ["GRANT", 100],
    ]);
  });

  it.each([
    [
      "its default document cache (refetched: Balance is invalidated by typename)",
      () => cacheExchange,
      1,
      false,
    ],
    [
      "Graphcache with default settings (updated in place, also by live events: Balance is normalised by id)",
      () => graphcache(),
      0,
      true,
    ],
  ])("urql with %s", async (_name, cache, refetches, updatedLive) => {
    const { userId, token } = await server.fundUser(100);
    const authorization = `Bearer ${token}`;
    const spy = vi.spyOn(globalThis, "fetch");
    const urql = urqlClient(authorization, cache());
    const changes: Change[] = [];
    const live = pipe(
      urql.subscription<Change>(BALANCE_CHANGED, {}),
      subscribe((result) => result.data && changes.push(result.data)),
    );
    closers.push(live.unsubscribe);
    const balances: number[] = [];
    const watched = pipe(
      urql.query<{ balance: { balance: number } }>(BALANCE, {}),
      subscribe((result) => result.data && balances.push(result.data.balance.balance)),
    );
    closers.push(watched.unsubscribe);
    await seen(balances, (balance) => balance === 100);
    await seen(changes, (change) => change.balanceChanged.delta === 0);
    const before = balanceRequests(spy);
    expect(before).toBe(1);

    const input = { amount: 10, description: "Premium feature", idempotencyKey: "order-42" };
    const spent = await urql.mutation<Spent>(SPEND, { input }).toPromise();
    expect(spent.data?.spendTokens).toMatchObject({ success: true, newBalance: 90 });
    await seen(balances, (balance) => balance === 90);
    expect(balanceRequests(spy) - before).toBe(refetches);
    const replay = await urql.mutation<Spent>(SPEND, { input }).toPromise();
    expect(replay.data?.spendTokens.transaction.id).toBe(spent.data?.spendTokens.transaction.id);
    const change = await seen(changes, (item) => item.balanceChanged.delta === -10);
    expect(change.balanceChanged).toMatchObject({ balance: 90, transaction: { idempotencyKey: "order-42" } });
    if (updatedLive) {
      // A purchase credited by the webhook reaches the app only as a live event: its `current`
      // Balance (same id as Query.balance) updates the cached balance without a request.
      const requests = balanceRequests(spy);
      await server.purchase(userId);
      await seen(balances, (balance) => balance === 190);
      expect(balanceRequests(spy)).toBe(requests);
    }
    const page = (after: string | null) =>
      urql.query<Page>(TRANSACTIONS, { first: 1, after }, { requestPolicy: "network-only" }).toPromise();
    expect(await allEntries(async (after) => (await page(after)).data as Page)).toEqual([
      ...(updatedLive ? [["PURCHASE", 100]] : []),
      ["SPEND", -10],
      ["GRANT", 100],
    ]);
  });

  it("Apollo Client with its default InMemoryCache (updated in place, also by live events: Balance is normalised by id)", async () => {
    const { userId, token } = await server.fundUser(100);
    const authorization = `Bearer ${token}`;
    const spy = vi.spyOn(globalThis, "fetch");
    const link = ApolloLink.split(
      ({ query }) => {
        const definition = getMainDefinition(query);
        return definition.kind === "OperationDefinition" && definition.operation === "subscription";
      },
      new GraphQLWsLink(graphqlWs(authorization)),
      new HttpLink({ uri: server.graphqlUrl, headers: { authorization } }),
    );
    const apollo = new ApolloClient({ link, cache: new InMemoryCache() });
    closers.push(() => apollo.stop());

    const changes: Change[] = [];
    const live = apollo.subscribe<Change>({ query: gql(BALANCE_CHANGED) }).subscribe(({ data }) => {
      if (data) changes.push(data);
    });
    closers.push(() => live.unsubscribe());
    const balances: number[] = [];
    const watched = apollo
      .watchQuery<{ balance: { balance: number } }>({ query: gql(BALANCE) })
      .subscribe(({ data }) => {
        const balance = data?.balance?.balance;
        if (balance !== undefined) balances.push(balance);
      });
    closers.push(() => watched.unsubscribe());
    await seen(balances, (balance) => balance === 100);
    await seen(changes, (change) => change.balanceChanged.delta === 0);
    const before = balanceRequests(spy);
    expect(before).toBe(1);

    const input = { amount: 10, description: "Premium feature", idempotencyKey: "order-42" };
    const spent = await apollo.mutate<Spent>({ mutation: gql(SPEND), variables: { input } });
    expect(spent.data?.spendTokens).toMatchObject({ success: true, newBalance: 90 });
    await seen(balances, (balance) => balance === 90);
    expect(balanceRequests(spy)).toBe(before);
    const replay = await apollo.mutate<Spent>({ mutation: gql(SPEND), variables: { input } });
    expect(replay.data?.spendTokens.transaction.id).toBe(spent.data?.spendTokens.transaction.id);
    const cached = apollo.readQuery<{ balance: { balance: number; version: number } }>({
      query: gql(BALANCE),
    });
    expect(cached?.balance).toMatchObject({ balance: 90, version: 2 });
    const change = await seen(changes, (item) => item.balanceChanged.delta === -10);
    expect(change.balanceChanged).toMatchObject({ balance: 90, transaction: { idempotencyKey: "order-42" } });
    // A purchase credited by the webhook reaches the app only as a live event: its `current`
    // Balance (same id as Query.balance) updates the cached balance without a request.
    await server.purchase(userId);
    await seen(balances, (balance) => balance === 190);
    expect(balanceRequests(spy)).toBe(before);
    expect(apollo.readQuery<{ balance: { version: number } }>({ query: gql(BALANCE) })?.balance.version).toBe(
      3,
    );
    const page = (after: string | null) =>
      apollo.query<Page>({
        query: gql(TRANSACTIONS),
        variables: { first: 1, after },
        fetchPolicy: "network-only",
      });
    expect(await allEntries(async (after) => (await page(after)).data as Page)).toEqual([
      ["PURCHASE", 100],
      ["SPEND", -10],
      ["GRANT", 100],
    ]);
  });
});

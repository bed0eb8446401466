import { createServer } from "node:http";
import { createSchema, createYoga } from "graphql-yoga";

/**
 * The benchmark's baseline: a graphql-yoga hello-world mutation on node:http, served the same way
 * as token-ledger (one process, yoga on /graphql, masked errors, no batching), with no database.
 */
const yoga = createYoga({
  schema: createSchema({
    typeDefs: "type Query { ok: Boolean! } type Mutation { hello(name: String!): String! }",
    resolvers: {
      Query: { ok: () => true },
      Mutation: { hello: (_root, { name }: { name: string }) => `Hello ${name}` },
    },
  }),
  graphiql: false,
  landingPage: false,
  batching: false,
  logging: false,
});

const server = createServer((req, res) => {
  void yoga(req, res);
});
server.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
  const address = server.address();
  process.stdout.write(`${JSON.stringify({ port: typeof address === "object" ? address?.port : 0 })}\n`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));

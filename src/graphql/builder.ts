import SchemaBuilder from "@pothos/core";
import RelayPlugin from "@pothos/plugin-relay";
import ScopeAuthPlugin from "@pothos/plugin-scope-auth";
import { GraphQLError } from "graphql";
import { DateTimeResolver, JSONResolver } from "graphql-scalars";
import { READ_SCOPE, type Viewer } from "../auth/jwt.js";
import type { GraphQLContext } from "../context.js";

/** Names of the types `node(id:)` may load; each module registers its own as it defines it. */
const nodeTypes = new Set<string>();

export function registerNodeType<Name extends string>(name: Name): Name {
  nodeTypes.add(name);
  return name;
}

function badId(): GraphQLError {
  return new GraphQLError("Invalid id: not a global id of this API", {
    extensions: { code: "BAD_USER_INPUT" },
  });
}

/**
 * Decodes `base64("<Type>:<id>")`. Anything else, or a type that `node` cannot load, is the
 * client's mistake (BAD_USER_INPUT), not an unexpected error; the message does not echo the input.
 */
function decodeGlobalId(globalId: string): { typename: string; id: string } {
  if (!/^[A-Za-z0-9+/_-]{1,200}={0,2}$/.test(globalId)) throw badId();
  const match = /^([A-Z_a-z]\w*):(.+)$/s.exec(Buffer.from(globalId, "base64").toString());
  if (!match?.[1] || !match[2] || !nodeTypes.has(match[1])) throw badId();
  return { typename: match[1], id: match[2] };
}

export const builder = new SchemaBuilder<{
  Context: GraphQLContext;
  AuthScopes: { user: boolean; admin: boolean; operator: boolean };
  AuthContexts: {
    user: GraphQLContext & { viewer: Viewer };
    admin: GraphQLContext & { viewer: Viewer };
    operator: GraphQLContext & { viewer: Viewer };
  };
  Scalars: {
    DateTime: { Input: Date; Output: Date };
    JSON: { Input: unknown; Output: unknown };
    ID: { Input: string; Output: string | number };
  };
  DefaultFieldNullability: false;
}>({
  plugins: [ScopeAuthPlugin, RelayPlugin],
  defaultFieldNullability: false,
  scopeAuth: {
    // Check auth when a subscription starts, not only when each event resolves: otherwise a
    // subscriber without a token would reach the subscribe function.
    authorizeOnSubscribe: true,
    // operator: reads for the console, by an admin or a read-only operator (tokens:read).
    authScopes: (context) => ({
      user: context.viewer !== null,
      admin: context.viewer?.isAdmin === true,
      operator: context.viewer?.isAdmin === true || context.viewer?.scopes.has(READ_SCOPE) === true,
    }),
    unauthorizedError: (_parent, context) =>
      context.viewer
        ? new GraphQLError("This operation needs the tokens:admin scope", {
            extensions: { code: "FORBIDDEN" },
          })
        : new GraphQLError(
            context.authError ?? "Authentication required: send Authorization: Bearer <token>",
            {
              extensions: { code: "UNAUTHENTICATED" },
            },
          ),
  },
  relay: {
    clientMutationId: "omit",
    decodeGlobalID: decodeGlobalId,
    cursorType: "String",
    nodeTypeOptions: { description: "An object with a global id." },
    idFieldOptions: { description: "A global, opaque id." },
    nodeQueryOptions: {
      description: "One of the caller's own objects by global id; null for anyone else's.",
    },
    nodesQueryOptions: { description: "Several of the caller's own objects by global id." },
    pageInfoTypeOptions: { description: "Where a page sits in a connection." },
    hasNextPageFieldOptions: { description: "More entries follow this page." },
    hasPreviousPageFieldOptions: { description: "More entries precede this page." },
    startCursorFieldOptions: { description: "The cursor of the first edge." },
    endCursorFieldOptions: { description: "The cursor of the last edge." },
    cursorFieldOptions: { description: "An opaque position to page from." },
    nodeFieldOptions: { description: "The entry itself." },
    edgesFieldOptions: { description: "The entries of this page, each with its cursor." },
    pageInfoFieldOptions: { description: "How to fetch the next or previous page." },
    firstArgOptions: { description: "How many entries from the start (newest); at most 100, default 20." },
    afterArgOptions: { description: "Entries after (older than) this cursor." },
    lastArgOptions: { description: "How many entries from the end (oldest); at most 100." },
    beforeArgOptions: { description: "Entries before (newer than) this cursor." },
  },
});

builder.addScalarType("DateTime", DateTimeResolver);
builder.addScalarType("JSON", JSONResolver);

builder.queryType({ description: "Reads for the authenticated caller." });
builder.mutationType({ description: "Balance changes; every one is a committed ledger entry." });

import { GraphQLError } from "graphql";
import type { Viewer } from "../../auth/jwt.js";
import { MAX_USER_ID_LENGTH } from "../../db/schema.js";
import { builder } from "../../graphql/builder.js";
import {
  CaptureHoldInput,
  CaptureHoldPayloadRef,
  HoldRef,
  HoldStatusEnum,
  ReleaseHoldInput,
  ReleaseHoldPayloadRef,
  ReserveTokensInput,
  ReserveTokensPayloadRef,
} from "./ledger.holds.graphql-types.js";
import { capturePayload, releasePayload, reservePayload } from "./ledger.holds.payloads.js";
import type { HoldActor } from "./ledger.types.js";

/**
 * Holds over GraphQL: thin resolvers over the ledger's hold operations (ledger.holds.ts). A user acts
 * on its own holds; an admin (tokens:admin) on anyone's. Someone else's hold is HOLD_NOT_FOUND.
 */

const MAX_HOLDS_PAGE = 100;

const actorOf = (viewer: Viewer): HoldActor => ({ userId: viewer.userId, admin: viewer.isAdmin });

builder.queryFields((t) => ({
  hold: t.withAuth({ user: true }).field({
    type: HoldRef,
    nullable: true,
    description: "One of the caller's holds by id (anyone's for an admin); null for none or someone else's.",
    args: { id: t.arg.id({ required: true, description: "The hold's id." }) },
    resolve: (_root, { id }, context) => context.ledger.holdOf(String(id), actorOf(context.viewer)),
  }),
  holds: t.withAuth({ user: true }).connection(
    {
      type: HoldRef,
      description: "The caller's holds, newest first; an admin may name another user.",
      args: {
        status: t.arg({ type: HoldStatusEnum, required: false, description: "Only holds in this status." }),
        userId: t.arg.id({
          required: false,
          description: "Whose holds (admins only); the caller's when absent.",
        }),
      },
      resolve: async (_root, args, context) => {
        const userId =
          args.userId === null || args.userId === undefined ? context.viewer.userId : String(args.userId);
        if (userId !== context.viewer.userId && !context.viewer.isAdmin) {
          throw new GraphQLError("Listing another user's holds needs the tokens:admin scope", {
            extensions: { code: "FORBIDDEN" },
          });
        }
        if (userId.length === 0 || userId.length > MAX_USER_ID_LENGTH)
          throw badInput(`userId: 1 to ${MAX_USER_ID_LENGTH} characters`);
        if (args.last !== null && args.last !== undefined)
          throw badInput("holds pages forward only: use first and after");
        if (args.before !== null && args.before !== undefined)
          throw badInput("holds pages forward only: use first and after");
        const first = args.first ?? 20;
        if (!Number.isInteger(first) || first < 1 || first > MAX_HOLDS_PAGE)
          throw badInput(`first: 1 to ${MAX_HOLDS_PAGE}`);
        const after = args.after === null || args.after === undefined ? undefined : decodeCursor(args.after);
        const page = await context.ledger.holdsOf(userId, { status: args.status ?? undefined, first, after });
        const edges = page.holds.map((hold) => ({ cursor: encodeCursor(hold.id), node: hold }));
        return {
          edges,
          pageInfo: {
            hasNextPage: page.hasMore,
            hasPreviousPage: after !== undefined,
            startCursor: edges[0]?.cursor ?? null,
            endCursor: edges.at(-1)?.cursor ?? null,
          },
        };
      },
    },
    { name: "HoldConnection", description: "A page of holds, newest first." },
    { name: "HoldEdge", description: "One hold and its cursor." },
  ),
}));

builder.mutationFields((t) => ({
  reserveTokens: t.withAuth({ user: true }).field({
    type: ReserveTokensPayloadRef,
    description:
      "Sets the caller's tokens aside for a job (a hold), to capture what it used after. Counts against the spend rate limit. Refusals come back as data with an errorCode.",
    args: { input: t.arg({ type: ReserveTokensInput, required: true }) },
    resolve: (_root, { input }, context) => reservePayload(context, context.viewer.userId, input),
  }),
  captureHold: t.withAuth({ user: true }).field({
    type: CaptureHoldPayloadRef,
    description:
      "Spends what a job used of its hold (one SPEND entry) and gives the rest back. The caller's own hold, or anyone's for an admin.",
    args: { input: t.arg({ type: CaptureHoldInput, required: true }) },
    resolve: (_root, { input }, context) => {
      const { holdId, ...capture } = input;
      return capturePayload(context, actorOf(context.viewer), String(holdId), capture);
    },
  }),
  releaseHold: t.withAuth({ user: true }).field({
    type: ReleaseHoldPayloadRef,
    description:
      "Gives a hold's tokens back whole (a job failed or was cancelled). The caller's own hold, or anyone's for an admin.",
    args: { input: t.arg({ type: ReleaseHoldInput, required: true }) },
    resolve: (_root, { input }, context) =>
      releasePayload(context, actorOf(context.viewer), String(input.holdId)),
  }),
}));

function badInput(message: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code: "BAD_USER_INPUT" } });
}

function encodeCursor(holdId: string): string {
  return Buffer.from(`hold:${holdId}`).toString("base64url");
}

function decodeCursor(cursor: string): string {
  const match = /^hold:([1-9]\d{0,17})$/.exec(Buffer.from(cursor, "base64url").toString());
  if (!match?.[1]) throw badInput("Invalid cursor");
  return match[1];
}

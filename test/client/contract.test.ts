import { readFileSync } from "node:fs";
import { join } from "node:path";
import { buildSchema, type GraphQLEnumType } from "graphql";
import { describe, expect, it } from "vitest";
import {
  BALANCE_CHANGE_REASONS,
  CloseCode,
  HOLD_OVERAGES,
  HOLD_REFUSAL_CODES,
  HOLD_STATUSES,
  SPEND_REFUSAL_CODES,
  TOKEN_SOURCES,
  TRANSACTION_KINDS,
} from "../../src/client/protocol.js";
import { ENTRY_KINDS, LOT_SOURCES } from "../../src/db/schema.js";
import {
  CLOSE_AUTH_UNAVAILABLE,
  CLOSE_RATE_LIMITED,
  CLOSE_TOKEN_EXPIRED,
  CLOSE_UNAUTHORIZED,
} from "../../src/graphql/websocket.js";
import { HOLD_ERROR_CODES } from "../../src/modules/ledger/ledger.holds.payloads.js";
import { SPEND_ERROR_CODES } from "../../src/modules/ledger/ledger.payloads.js";
import { BALANCE_CHANGE_REASONS as SERVER_REASONS } from "../../src/modules/live/balance-change.js";
import { projectRoot } from "../helpers/process.js";

// The client's protocol module (src/client/protocol.ts) against schema.graphql's enums and the
// server's constants: a kind, a refusal or a close code added on one side fails here until the other
// side has it too.

const schema = buildSchema(readFileSync(join(projectRoot, "schema.graphql"), "utf8"));
const enumValues = (name: string) =>
  (schema.getType(name) as GraphQLEnumType)
    .getValues()
    .map((value) => value.name)
    .sort();
const sorted = (values: readonly string[]) => [...values].sort();

describe("the client's protocol module", () => {
  it("has schema.graphql's TransactionKind, which is the server's entry kinds", () => {
    expect(sorted(TRANSACTION_KINDS)).toEqual(enumValues("TransactionKind"));
    expect(sorted(ENTRY_KINDS)).toEqual(enumValues("TransactionKind"));
  });

  it("has schema.graphql's SpendErrorCode, which is the server's spend refusals", () => {
    expect(sorted(SPEND_REFUSAL_CODES)).toEqual(enumValues("SpendErrorCode"));
    expect(sorted(SPEND_ERROR_CODES)).toEqual(enumValues("SpendErrorCode"));
  });

  it("has schema.graphql's BalanceChangeReason, which is the server's reasons", () => {
    expect(sorted(BALANCE_CHANGE_REASONS)).toEqual(enumValues("BalanceChangeReason"));
    expect(sorted(SERVER_REASONS)).toEqual(enumValues("BalanceChangeReason"));
  });

  it("has schema.graphql's HoldErrorCode, which is the server's hold refusals", () => {
    expect(sorted(HOLD_REFUSAL_CODES)).toEqual(enumValues("HoldErrorCode"));
    expect(sorted(HOLD_ERROR_CODES)).toEqual(enumValues("HoldErrorCode"));
  });

  it("has schema.graphql's HoldStatus and HoldOverage", () => {
    expect(sorted(HOLD_STATUSES)).toEqual(enumValues("HoldStatus"));
    expect(sorted(HOLD_OVERAGES)).toEqual(enumValues("HoldOverage"));
  });

  it("has schema.graphql's TokenSource, which is the server's lot sources", () => {
    expect(sorted(TOKEN_SOURCES)).toEqual(enumValues("TokenSource"));
    expect(sorted(LOT_SOURCES.map((source) => source.toUpperCase()))).toEqual(enumValues("TokenSource"));
  });

  it("has the server's WebSocket close codes", () => {
    expect(CloseCode).toEqual({
      Unauthorized: CLOSE_UNAUTHORIZED,
      TokenExpired: CLOSE_TOKEN_EXPIRED,
      RateLimited: CLOSE_RATE_LIMITED,
      AuthUnavailable: CLOSE_AUTH_UNAVAILABLE,
    });
  });
});

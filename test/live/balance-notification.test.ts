import pino from "pino";
import { describe, expect, it } from "vitest";
import { parseNotification } from "../../src/modules/live/balance-notification.js";
import { LogCapture } from "../helpers/app.js";

// The live module's check of the ledger's NOTIFY payload, with no database: what is kept, what is
// dropped, and that each drop is logged.

function parse(payload: string) {
  const logs = new LogCapture();
  const changes = parseNotification(payload, pino({ level: "warn" }, logs));
  return { changes, warnings: logs.messages() };
}

const good = {
  userId: "u1",
  balance: 300,
  delta: -200,
  version: 4,
  entryId: 17,
  at: "2026-12-02T19:40:00.123456+00:00",
  kind: "EXPIRE",
  held: 0,
};

describe("parseNotification", () => {
  it("keeps a well-formed change, with its time as a Date and a string entry id as a number", () => {
    const { changes, warnings } = parse(JSON.stringify([good, { ...good, entryId: "18", version: 5 }]));
    expect(changes).toEqual([
      { ...good, holdId: null, at: new Date("2026-12-02T19:40:00.123Z") },
      { ...good, holdId: null, entryId: 18, version: 5, at: new Date("2026-12-02T19:40:00.123Z") },
    ]);
    expect(warnings).toEqual([]);
  });

  it("accepts a payload of a money function older than lots (no kind, no held: held 0)", () => {
    const { kind: _kind, held: _held, ...old } = good;
    expect(parse(JSON.stringify([old])).changes).toEqual([
      { ...old, held: 0, holdId: null, at: new Date("2026-12-02T19:40:00.123Z") },
    ]);
  });

  it("keeps a hold's change without an entry (entryId null) and a capture's SPEND with its holdId (issue 19)", () => {
    const at = new Date("2026-12-02T19:40:00.123Z");
    const hold = { ...good, delta: 0, entryId: null, held: 50, holdId: 7 };
    const kinds = ["HOLD", "RELEASE", "HOLD_EXPIRED"];
    const capture = { ...good, kind: "SPEND", holdId: "7" };
    const { changes, warnings } = parse(
      JSON.stringify([...kinds.map((kind) => ({ ...hold, kind })), capture]),
    );
    expect(changes).toEqual([
      ...kinds.map((kind) => ({ ...hold, kind, holdId: "7", at })),
      { ...capture, holdId: "7", at },
    ]);
    expect(warnings).toEqual([]);
  });

  it("drops a payload that is not JSON, or not an array, and logs it", () => {
    expect(parse("[{not json")).toEqual({
      changes: [],
      warnings: ["dropped a balance notification that is not JSON"],
    });
    expect(parse(JSON.stringify(good))).toEqual({
      changes: [],
      warnings: ["dropped a balance notification that is not an array"],
    });
  });

  it("drops each malformed change alone, logs what is wrong, and keeps the rest", () => {
    const bad = [
      { ...good, balance: -1 },
      { ...good, balance: 1.5 },
      { ...good, kind: "STEAL" },
      { ...good, entryId: "0x11" },
      { ...good, at: "yesterday" },
      { ...good, userId: "" },
      { ...good, version: "4" },
      // Without an entry, only a hold's own kinds with their hold make sense.
      { ...good, entryId: null, kind: "SPEND", holdId: 7 },
      { ...good, entryId: null, kind: "HOLD" },
      { ...good, kind: "HOLD", entryId: null, holdId: "hold-7" },
      null,
      "u1",
    ];
    const { changes, warnings } = parse(JSON.stringify([...bad, { ...good, version: 9 }]));
    expect(changes.map((change) => change.version)).toEqual([9]);
    expect(warnings).toHaveLength(bad.length);
    expect(new Set(warnings)).toEqual(new Set(["dropped a malformed change of a balance notification"]));
  });
});

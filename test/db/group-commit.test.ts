import { describe, expect, it } from "vitest";
import { createGroupCommit, type GroupCommitOptions, OverloadedError } from "../../src/db/group-commit.js";

// The group commit alone, with a fake write and no database: batching within one turn of the event
// loop, order, maxBatch, maxInFlight, a missing result, errors shared by a batch, the retry running
// a batch again, and the bounded queue.

/** A write whose calls are recorded and answered only when the test says so. */
function heldWrite() {
  const calls: { items: number[]; finish(error?: unknown): void }[] = [];
  let inFlight = 0;
  let mostInFlight = 0;
  const write = (items: readonly number[]) =>
    new Promise<number[]>((resolve, reject) => {
      inFlight += 1;
      mostInFlight = Math.max(mostInFlight, inFlight);
      calls.push({
        items: [...items],
        finish(error) {
          inFlight -= 1;
          if (error) reject(error);
          else resolve(items.map((n) => n * 2));
        },
      });
    });
  return { write, calls, mostInFlight: () => mostInFlight };
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

function doubling(options: GroupCommitOptions = {}) {
  const writes: number[][] = [];
  const group = createGroupCommit(async (items: readonly number[]) => {
    writes.push([...items]);
    return items.map((n) => n * 2);
  }, options);
  return { group, writes };
}

describe("group commit", () => {
  it("items submitted in one turn go in one write, and each gets its own result, in order", async () => {
    const { group, writes } = doubling({ maxInFlight: 1 });
    expect(await Promise.all([1, 2, 3].map((n) => group.submit(n)))).toEqual([2, 4, 6]);
    expect(writes).toEqual([[1, 2, 3]]);
  });

  it("a batch takes at most maxBatch items, in arrival order", async () => {
    const { group, writes } = doubling({ maxBatch: 2, maxInFlight: 1 });
    expect(await Promise.all([1, 2, 3, 4, 5].map((n) => group.submit(n)))).toEqual([2, 4, 6, 8, 10]);
    expect(writes).toEqual([[1, 2], [3, 4], [5]]);
  });

  it("no more than maxInFlight writes run at once; what arrives meanwhile waits and goes together", async () => {
    const held = heldWrite();
    const group = createGroupCommit(held.write, { maxInFlight: 2 });
    const first = group.submit(1);
    await turn();
    const second = group.submit(2);
    await turn();
    const waiting = [3, 4, 5].map((n) => group.submit(n));
    await turn();
    expect(held.calls.map((call) => call.items)).toEqual([[1], [2]]);
    held.calls[0]?.finish();
    expect(await first).toBe(2);
    // The freed slot is filled on the turn after the write settled.
    await turn();
    await turn();
    expect(held.calls.map((call) => call.items)).toEqual([[1], [2], [3, 4, 5]]);
    held.calls[1]?.finish();
    held.calls[2]?.finish();
    expect(await Promise.all([second, ...waiting])).toEqual([4, 6, 8, 10]);
    expect(held.mostInFlight()).toBe(2);
  });

  it("an item the write gives no result for is rejected; the others resolve", async () => {
    const group = createGroupCommit(async (items: readonly number[]) => items.slice(0, 1), {});
    const [a, b] = await Promise.allSettled([group.submit(1), group.submit(2)]);
    expect(a).toEqual({ status: "fulfilled", value: 1 });
    expect(b).toMatchObject({
      status: "rejected",
      reason: { message: "the write gave no result for item 1 of 2" },
    });
  });

  it("a failed write rejects every item of its batch with its error; the next batch is written", async () => {
    const broken = new Error("statement failed");
    let calls = 0;
    const group = createGroupCommit(
      async (items: readonly number[]) => {
        calls += 1;
        if (calls === 1) throw broken;
        return [...items];
      },
      { maxInFlight: 1 },
    );
    const first = await Promise.allSettled([group.submit(1), group.submit(2)]);
    expect(first).toEqual([
      { status: "rejected", reason: broken },
      { status: "rejected", reason: broken },
    ]);
    expect(await group.submit(3)).toBe(3);
  });

  it("a serialization failure runs the whole batch again", async () => {
    const writes: number[][] = [];
    const group = createGroupCommit(async (items: readonly number[]) => {
      writes.push([...items]);
      if (writes.length === 1)
        throw Object.assign(new Error("could not serialize access"), { code: "40001" });
      return [...items];
    }, {});
    expect(await Promise.all([group.submit(1), group.submit(2)])).toEqual([1, 2]);
    expect(writes).toEqual([
      [1, 2],
      [1, 2],
    ]);
  });

  it("an onBatch that throws rejects its batch instead of leaving the callers waiting", async () => {
    const group = createGroupCommit(async (items: readonly number[]) => [...items], {
      onBatch: () => {
        throw new Error("histogram broke");
      },
    });
    await expect(group.submit(1)).rejects.toThrow("histogram broke");
  });

  it("past maxQueued waiting items, submit refuses at once with OverloadedError; later it accepts again", async () => {
    const held = heldWrite();
    const group = createGroupCommit(held.write, { maxInFlight: 1, maxQueued: 2 });
    const accepted = [group.submit(1), group.submit(2)];
    const refused = group.submit(3);
    await expect(refused).rejects.toBeInstanceOf(OverloadedError);
    await expect(refused).rejects.toMatchObject({ retryAfterSeconds: 1 });
    await turn();
    // The first two are in flight now, not waiting: there is room again.
    const later = group.submit(4);
    held.calls[0]?.finish();
    expect(await Promise.all(accepted)).toEqual([2, 4]);
    await turn();
    held.calls[1]?.finish();
    expect(await later).toBe(8);
  });
});

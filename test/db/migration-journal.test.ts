import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

interface JournalEntry {
  idx: number;
  when: number;
  tag: string;
}

const journal = JSON.parse(
  readFileSync(new URL("../../drizzle/meta/_journal.json", import.meta.url), "utf8"),
) as {
  entries: JournalEntry[];
};

describe("drizzle/meta/_journal.json", () => {
  // drizzle's migrator applies only migrations whose `when` is later than the last applied one's: a
  // migration with an earlier time is skipped on every database that already has its predecessor.
  it("orders the migrations by time as by number, so none is skipped on an existing database", () => {
    const outOfOrder = journal.entries
      .slice(1)
      .filter((entry, i) => entry.when <= (journal.entries[i] as JournalEntry).when)
      .map((entry) => entry.tag);
    expect(outOfOrder).toEqual([]);
  });

  it("numbers the migrations 0, 1, 2... with tags that start with their number", () => {
    expect(journal.entries.map((entry) => entry.idx)).toEqual(journal.entries.map((_, i) => i));
    for (const entry of journal.entries)
      expect(entry.tag.startsWith(String(entry.idx).padStart(4, "0"))).toBe(true);
  });
});

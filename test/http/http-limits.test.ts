import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newUserId, startTestApp, type TestApp } from "../helpers/app.js";
import { driverName } from "../helpers/database.js";

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

describe(`request bodies over 1 MB on ${driverName}`, () => {
  it("40 sequential 2 MB requests through fetch all get 413, never a reset connection", async () => {
    const token = await t.token(newUserId());
    const big = JSON.stringify({ query: "{ balance { balance } }", pad: "x".repeat(2 * 1024 * 1024) });
    const doors = [
      { path: "/graphql", headers: { authorization: `Bearer ${token}` } },
      { path: "/api/v1/tokens/spend", headers: { authorization: `Bearer ${token}` } },
      {
        path: "/api/v1/tokens/webhook/revenuecat",
        headers: { authorization: "Bearer rc-webhook-secret-for-tests-0123" },
      },
    ];
    const statuses: (number | string)[] = [];
    for (let i = 0; i < 40; i += 1) {
      const door = doors[i % doors.length] as (typeof doors)[number];
      try {
        const response = await fetch(`${t.url}${door.path}`, {
          method: "POST",
          headers: { "content-type": "application/json", ...door.headers },
          body: big,
        });
        await response.arrayBuffer();
        statuses.push(response.status);
      } catch (error) {
        statuses.push(String((error as { cause?: { code?: string } }).cause?.code ?? error));
      }
    }
    expect(statuses).toEqual(Array(40).fill(413));
  });
});

/**
 * The environment of every server a test starts, in-process (startTestApp) or as a process
 * (startServerProcess); a test's own variables override it.
 */

export const JWT_SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789";
export const WEBHOOK_SECRET = "rc-webhook-secret-for-tests-0123";

export const TEST_ENV: Readonly<Record<string, string>> = {
  NODE_ENV: "test",
  JWT_SECRET,
  REVENUECAT_WEBHOOK_SECRET: WEBHOOK_SECRET,
  LOG_LEVEL: "info",
  // Generous limits: the rate-limit and lockout tests set their own.
  RATE_LIMIT_SPEND_PER_MINUTE: "1000000",
  RATE_LIMIT_AUTH_FAILURES_PER_MINUTE: "1000000",
  // A loaded two-core CI machine can keep a healthy request waiting seconds under the suite's
  // concurrency tests; the deadline tests set their own.
  DATABASE_DEADLINE_MS: "30000",
};

import { signDevToken } from "../auth/jwt.js";
import { loadConfig } from "../config.js";
import { withDevSecrets } from "../dev-secrets.js";

const USAGE =
  "usage: npm run token -- <userId> [--admin | --read-only] [--expires 24h] [--console [--base http://host:port]]\n";

/**
 * `npm run token -- <userId> [--admin] [--expires 24h]`: prints a JWT signed with the configured
 * JWT_SECRET (in development, the generated one kept in DATA_DIR), for curl and GraphiQL. With
 * `--console`, a short-lived one (15 minutes unless --expires) inside the operator console's URL: in
 * its fragment, which browsers never send, so it stays out of the server's and any proxy's logs.
 */
async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write(USAGE);
    return;
  }
  const flagValue = (flag: string) => (args.includes(flag) ? args[args.indexOf(flag) + 1] : undefined);
  const forConsole = args.includes("--console");
  const expiresIn = flagValue("--expires") ?? (forConsole ? "15m" : "24h");
  const base = flagValue("--base");
  const userId = args.find(
    (arg, i) => !arg.startsWith("--") && !["--expires", "--base"].includes(args[i - 1] ?? ""),
  );
  if (!userId) {
    process.stderr.write(USAGE);
    process.exit(2);
  }
  const { config } = await withDevSecrets(loadConfig());
  if (!config.jwt.secret) {
    process.stderr.write("JWT_SECRET is not set (tokens from JWKS_URL come from your identity provider)\n");
    process.exit(1);
  }
  const token = await signDevToken({
    secret: config.jwt.secret,
    userId,
    admin: args.includes("--admin"),
    readOnly: args.includes("--read-only"),
    expiresIn,
    issuer: config.jwt.issuer,
    audience: config.jwt.audience,
    adminClaim: config.jwt.adminClaim,
    adminValue: config.jwt.adminValue,
  });
  if (!forConsole) {
    process.stdout.write(`${token}\n`);
    return;
  }
  const host = config.host === "0.0.0.0" || config.host === "::" ? "localhost" : config.host;
  const origin = (base ?? `http://${host}:${config.port}`).replace(/\/+$/, "");
  process.stdout.write(`${origin}/console#token=${token}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});

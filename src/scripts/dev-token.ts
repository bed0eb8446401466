import { signDevToken } from "../auth/jwt.js";
import { loadConfig } from "../config.js";
import { withDevSecrets } from "../dev-secrets.js";

/**
 * `npm run token -- <userId> [--admin] [--expires 24h]`: prints a JWT signed with the configured
 * JWT_SECRET (in development, the generated one kept in DATA_DIR), for curl and GraphiQL.
 */
async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write("usage: npm run token -- <userId> [--admin] [--expires 24h]\n");
    return;
  }
  const userId = args.find((arg) => !arg.startsWith("--"));
  const expiresIndex = args.indexOf("--expires");
  const expiresIn = expiresIndex >= 0 ? args[expiresIndex + 1] : "24h";
  if (!userId || userId === expiresIn) {
    process.stderr.write("usage: npm run token -- <userId> [--admin] [--expires 24h]\n");
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
    expiresIn,
    issuer: config.jwt.issuer,
    audience: config.jwt.audience,
    adminClaim: config.jwt.adminClaim,
    adminValue: config.jwt.adminValue,
  });
  process.stdout.write(`${token}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});

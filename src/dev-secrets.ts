import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Config } from "./config.js";

interface StoredSecrets {
  jwtSecret?: string;
  revenuecatWebhookSecret?: string;
}

export interface DevSecrets {
  readonly config: Config;
  /** Names of the secrets that came from the development secrets file rather than the environment. */
  readonly generated: readonly string[];
  readonly file: string;
}

/**
 * Outside production a missing secret is generated once and kept in DATA_DIR, so tokens handed out
 * yesterday still verify after a restart. Production never reaches this: loadConfig refuses to start.
 */
export async function withDevSecrets(config: Config): Promise<DevSecrets> {
  const file = join(config.dataDir, "dev-secrets.json");
  if (config.nodeEnv === "production") return { config, generated: [], file };
  const needJwt = !config.jwt.secret && !config.jwt.jwksUrl;
  const needWebhook = !config.revenuecat.webhookSecret;
  if (!needJwt && !needWebhook) return { config, generated: [], file };

  await mkdir(config.dataDir, { recursive: true });
  const stored = await readStored(file);
  const generated: string[] = [];
  if (needJwt) {
    stored.jwtSecret ??= randomBytes(32).toString("base64url");
    generated.push("JWT_SECRET");
  }
  if (needWebhook) {
    stored.revenuecatWebhookSecret ??= randomBytes(24).toString("base64url");
    generated.push("REVENUECAT_WEBHOOK_SECRET");
  }
  await writeFile(file, `${JSON.stringify(stored, null, 2)}\n`, { mode: 0o600 });

  return {
    file,
    generated,
    config: {
      ...config,
      jwt: { ...config.jwt, secret: config.jwt.secret ?? (needJwt ? stored.jwtSecret : undefined) },
      revenuecat: {
        ...config.revenuecat,
        webhookSecret: config.revenuecat.webhookSecret ?? stored.revenuecatWebhookSecret,
      },
    },
  };
}

async function readStored(file: string): Promise<StoredSecrets> {
  try {
    return JSON.parse(await readFile(file, "utf8")) as StoredSecrets;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return {};
    throw error;
  }
}

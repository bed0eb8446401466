import type { Logger } from "pino";
import type { Viewer } from "./auth/jwt.js";
import type { Database } from "./db/client.js";
import type { Metrics } from "./metrics.js";
import type { LedgerService } from "./modules/ledger/ledger.service.js";
import type { RateLimits } from "./modules/limits/rate-limits.js";
import type { BalanceHub } from "./modules/live/balance-hub.js";
import type { PurchasesService } from "./modules/purchases/purchases.service.js";

/** What every resolver and route may use; built the same way for HTTP and for WebSocket. */
export interface AppServices {
  readonly db: Database;
  readonly ledger: LedgerService;
  readonly hub: BalanceHub;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly limits: RateLimits;
  readonly purchases: PurchasesService;
}

export interface GraphQLContext extends AppServices {
  readonly viewer: Viewer | null;
  /** Why the presented token was refused, to tell the client; null when no token was sent. */
  readonly authError: string | null;
  readonly requestId: string;
}

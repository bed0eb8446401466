import { builder } from "./builder.js";
import "../modules/ledger/ledger.graphql.js";
import "../modules/ledger/ledger.admin.graphql.js";
import "../modules/legacy/legacy.graphql.js";
import "../modules/live/live.graphql.js";
import "../modules/purchases/purchases.graphql.js";
import "../modules/ledger/ledger.lineage.graphql.js";
import "../modules/ledger/ledger.lots.graphql.js";
import "../modules/ledger/ledger.holds.graphql.js";
import "../modules/purchases/deliveries.admin.graphql.js";
import "../modules/live/live.admin.graphql.js";
import "../console/health.graphql.js";

/** The whole GraphQL schema; importing it writes nothing and opens nothing. */
export const schema = builder.toSchema({ sortSchema: false });

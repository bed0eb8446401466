import { builder } from "../graphql/builder.js";
import type { HealthPoint } from "./health-history.js";

/** The console's health charts: this instance's own numbers over the last hour. */

const HealthPointRef = builder.objectRef<HealthPoint>("HealthPoint").implement({
  description: "This instance's numbers over one interval (the last point: the interval still running).",
  fields: (t) => ({
    at: t.expose("at", { type: "DateTime", description: "The end of the interval." }),
    purchaseSuccessRate: t.exposeFloat("purchaseSuccessRate", {
      nullable: true,
      description: "Purchases credited of credited, unmapped and failed ones (0 to 1); null with none.",
    }),
    purchases: t.exposeInt("purchases", { description: "Purchase deliveries in the interval." }),
    apiMeanMs: t.exposeFloat("apiMeanMs", {
      nullable: true,
      description: "Mean HTTP API response time, ms.",
    }),
    apiMaxMs: t.exposeFloat("apiMaxMs", { nullable: true, description: "Slowest HTTP API response, ms." }),
    apiRequests: t.exposeInt("apiRequests", { description: "HTTP API requests in the interval." }),
    webhookMeanMs: t.exposeFloat("webhookMeanMs", {
      nullable: true,
      description: "Mean webhook processing time, commit included, ms.",
    }),
    webhooks: t.exposeInt("webhooks", { description: "Webhook deliveries processed in the interval." }),
    failedSpendRate: t.exposeFloat("failedSpendRate", {
      nullable: true,
      description: "Spends refused or failed of all spends (0 to 1); null with none.",
    }),
    spends: t.exposeInt("spends", { description: "Spend requests in the interval." }),
  }),
});

builder.queryFields((t) => ({
  consoleAccess: t.withAuth({ operator: true }).string({
    description:
      "What the caller may do in the console: admin (tokens:admin) or read (tokens:read, read-only).",
    resolve: (_root, _args, context) => (context.viewer.isAdmin ? "admin" : "read"),
  }),
  serviceHealth: t.withAuth({ operator: true }).field({
    type: [HealthPointRef],
    description:
      "This instance's health over the last hour, oldest first. Needs tokens:admin or tokens:read.",
    resolve: (_root, _args, context) => context.health.points(),
  }),
}));

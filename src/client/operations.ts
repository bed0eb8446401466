/**
 * The GraphQL documents the client sends, written out by hand so the package needs no GraphQL
 * parser. The entry fields are the ones LedgerEntry promises.
 */
const ENTRY = "id amount balanceAfter kind idempotencyKey createdAt description metadata";
const EXPIRING = "expiring { amount expiresAt sources }";
/** `available` is balance less held: the client works it out rather than asking for it. */
const BALANCE = `id balance held version lastUpdated ${EXPIRING}`;

export const BALANCE_QUERY = `query TokenBalance { balance { ${BALANCE} } }`;

/**
 * The balance with the newest entries beside it, for a re-read while spends or a purchase are
 * awaited: the entries tell which of them the balance already includes.
 */
export const BALANCE_WITH_ENTRIES_QUERY = `query TokenBalanceWithEntries { balance { ${BALANCE} }
transactions(first: 20) { edges { node { ${ENTRY} } } } }`;

export const TRANSACTIONS_QUERY = `query TokenTransactions($first: Int, $after: String) {
transactions(first: $first, after: $after) { edges { node { ${ENTRY} } } pageInfo { hasNextPage endCursor } } }`;

export const SPEND_MUTATION = `mutation SpendTokens($input: SpendTokensInput!) { spendTokens(input: $input) {
success newBalance message errorCode retryAfterSeconds transaction { ${ENTRY} } balance { ${BALANCE} } } }`;

export const BALANCE_CHANGED_SUBSCRIPTION = `subscription TokenBalanceChanged {
balanceChanged { balance held delta reason holdId version lastUpdated ${EXPIRING} transaction { ${ENTRY} } } }`;

const HOLD = "id amount status captured createdAt expiresAt closedAt description metadata";
const HOLD_PAYLOAD = `success message errorCode replayed hold { ${HOLD} } balance { ${BALANCE} }`;

export const RESERVE_MUTATION = `mutation ReserveTokens($input: ReserveTokensInput!) {
reserveTokens(input: $input) { ${HOLD_PAYLOAD} retryAfterSeconds } }`;

export const CAPTURE_MUTATION = `mutation CaptureHold($input: CaptureHoldInput!) {
captureHold(input: $input) { ${HOLD_PAYLOAD} shortfall transaction { ${ENTRY} } } }`;

export const RELEASE_MUTATION = `mutation ReleaseHold($input: ReleaseHoldInput!) {
releaseHold(input: $input) { ${HOLD_PAYLOAD} } }`;

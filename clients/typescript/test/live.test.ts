// The client against a live API (tests/live_stack.py starts one: gunicorn + the Stripe
// sandbox). Run: `make test-ts`.
import assert from "node:assert/strict";
import { before, test } from "node:test";
import {
  BillingApiError,
  createBillingClient,
  ENDPOINT_KEY,
  unwrap,
  type BillingClient,
  type KeyValueStore,
} from "../src/index.js";

const API = process.env.BILLING_API_URL;
if (!API) throw new Error("BILLING_API_URL is not set (run through tests/live_stack.py)");

async function devToken(userId: string): Promise<string> {
  const reply = await fetch(`${API}/demo/token`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ userId }),
  });
  assert.equal(reply.status, 200);
  return ((await reply.json()) as { token: string }).token;
}

// Spark's store, holding the endpoint the way the guide sets it (with /api).
const sparkKv: KeyValueStore = {
  async get<T>(key: string) {
    return (key === ENDPOINT_KEY ? `${API}/api` : undefined) as T | undefined;
  },
};

const userId = `ts-${Date.now()}`;
let billing: BillingClient;

before(async () => {
  const token = await devToken(userId);
  billing = await createBillingClient({ kv: sparkKv, getToken: () => token });
});

test("plans are public and typed", async () => {
  const anonymous = await createBillingClient({ kv: sparkKv, getToken: () => null });
  const plans = unwrap(await anonymous.GET("/api/plans"));
  const pro = plans.plans.find((plan) => plan.id === "pro");
  assert.ok(pro);
  const monthly = pro.prices.find((price) => price.plan === "monthly");
  assert.equal(monthly?.amount, 1900);
  assert.equal(monthly?.interval, "month");
});

test("me: a new user is free", async () => {
  const me = unwrap(await billing.GET("/api/me"));
  assert.equal(me.user.id, userId);
  assert.equal(me.user.tier, "free");
  assert.equal(me.subscription, null);
});

test("usage: consume one, replay the key, and a typed validation error", async () => {
  const body = { count: 1, idempotencyKey: `k-${Date.now()}` };
  const first = unwrap(await billing.POST("/api/usage/generations", { body }));
  assert.equal(first.granted, 1);
  assert.equal(first.generationsRemaining, 9);
  const again = await billing.POST("/api/usage/generations", { body });
  assert.equal(again.response.headers.get("Idempotent-Replayed"), "true");
  assert.equal(again.data?.generationsUsed, 1);
  const bad = await billing.POST("/api/usage/generations", {
    body: { count: 0, idempotencyKey: "x" },
  });
  assert.equal(bad.response.status, 422);
  assert.equal(bad.error?.error.code, "validation_error");
  assert.equal(bad.error?.error.fields?.[0]?.field, "count");
});

test("errors: no token is a typed 401", async () => {
  const anonymous = await createBillingClient({ baseUrl: API, getToken: () => undefined });
  await assert.rejects(
    async () => unwrap(await anonymous.GET("/api/me")),
    (err: unknown) =>
      err instanceof BillingApiError && err.status === 401 && err.code === "missing_token",
  );
});

test("checkout: pay on the hosted page, become pro, a second checkout is refused", async () => {
  const created = unwrap(
    await billing.POST("/api/create-checkout-session", { body: { plan: "monthly" } }),
  );
  assert.match(created.session.id, /^cs_/);
  assert.ok(created.session.url);
  const paid = await fetch(created.session.url, {
    method: "POST",
    body: new URLSearchParams({ card_number: "4242 4242 4242 4242" }),
    redirect: "manual",
  });
  assert.equal(paid.status, 303);
  assert.match(paid.headers.get("Location") ?? "", /\/demo\/success\?session_id=cs_/);
  const session = unwrap(
    await billing.POST("/api/retrieve-checkout-session", {
      body: { sessionId: created.session.id },
    }),
  );
  assert.equal(session.session.status, "complete");
  const me = unwrap(await billing.GET("/api/me"));
  assert.equal(me.user.tier, "pro");
  assert.equal(me.subscription?.status, "active");
  assert.equal(me.subscription?.interval, "month");
  const sub = unwrap(
    await billing.GET("/api/subscription/{userId}", {
      params: { path: { userId }, query: { refresh: true } },
    }),
  );
  assert.equal(sub.subscription?.tier, "pro");
  const second = await billing.POST("/api/create-checkout-session", { body: { plan: "yearly" } });
  assert.equal(second.response.status, 409);
  assert.equal(second.error?.error.code, "subscription_exists");
});

// GitHubSession against a live API and the GitHub stand-in (tests/live_stack.py starts both).
// Node has no cookie jar and sends no Origin, so `browser()` plays the browser: it keeps the
// API's cookies and sends the page's Origin, as fetch with credentials: "include" does.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  BillingApiError,
  createBillingClient,
  GitHubSession,
  unwrap,
} from "../src/index.js";

const API = process.env.BILLING_API_URL;
const GITHUB = process.env.BILLING_GITHUB_URL;
if (!API || !GITHUB) throw new Error("run through tests/live_stack.py (BILLING_*_URL unset)");
// The demo page's origin: the API's own, allowed in development.
const PAGE = `${API}/demo`;

interface Browser {
  fetch: typeof globalThis.fetch;
  cookies: Map<string, string>;
  calls: string[];
}

function browser(): Browser {
  const cookies = new Map<string, string>();
  const calls: string[] = [];
  const fetcher = async (input: string | URL | Request, init?: RequestInit) => {
    const request = new Request(input, init);
    calls.push(`${request.method} ${new URL(request.url).pathname}`);
    const headers = new Headers(request.headers);
    if (request.url.startsWith(API!)) {
      headers.set("Origin", new URL(API!).origin);
      if (cookies.size) {
        headers.set("Cookie", [...cookies].map(([name, value]) => `${name}=${value}`).join("; "));
      }
    }
    const response = await fetch(new Request(request, { headers, redirect: "manual" }));
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(";");
      const [name, value] = [pair.slice(0, pair.indexOf("=")), pair.slice(pair.indexOf("=") + 1)];
      if (/max-age=0/i.test(line) || !value) cookies.delete(name);
      else cookies.set(name, value);
    }
    return response;
  };
  return { fetch: fetcher as typeof globalThis.fetch, cookies, calls };
}

/** Start -> the stand-in's authorize form (a new test user) -> callback: the landing URL. */
async function signIn(session: GitHubSession, page: Browser, login: string): Promise<string> {
  const start = await page.fetch(session.signInUrl(PAGE));
  assert.equal(start.status, 303);
  const authorize = new URL(start.headers.get("Location")!);
  assert.equal(authorize.origin, new URL(GITHUB!).origin);
  assert.equal(authorize.searchParams.get("code_challenge_method"), "S256");
  const form = new URLSearchParams(authorize.searchParams);
  form.set("new_login", login);
  form.set("decision", "authorize");
  const granted = await fetch(`${GITHUB}/login/oauth/authorize`, {
    method: "POST",
    body: form,
    redirect: "manual",
  });
  const landing = await page.fetch(granted.headers.get("Location")!);
  assert.equal(landing.status, 303);
  return landing.headers.get("Location")!;
}

test("getToken: null before signing in, a typed 401 from the API", async () => {
  const page = browser();
  const session = await GitHubSession.create({ baseUrl: API, fetch: page.fetch });
  assert.equal(await session.getToken(), null);
  assert.equal(session.user, null);
  const billing = await createBillingClient({ baseUrl: API, session });
  await assert.rejects(
    async () => unwrap(await billing.GET("/api/me")),
    (err: unknown) => err instanceof BillingApiError && err.code === "missing_token",
  );
});

test("sign in with GitHub, then the API as that user; the token is renewed through the cookie", async () => {
  const page = browser();
  let clock = Date.now();
  const session = await GitHubSession.create({
    baseUrl: `${API}/api`,
    fetch: page.fetch,
    now: () => clock,
  });
  const login = `ts-${Date.now()}`;
  const landing = await signIn(session, page, login);
  assert.equal(landing, PAGE); // no token in the URL
  assert.ok(page.cookies.get("billing_refresh"));

  const billing = await createBillingClient({ baseUrl: API, session });
  const me = unwrap(await billing.GET("/api/me"));
  assert.match(me.user.id, /^github:\d+$/);
  assert.equal(session.user?.login, login);
  assert.equal(session.user?.id, me.user.id);

  // Held in memory while fresh: no second renewal ...
  const first = page.cookies.get("billing_refresh");
  const token = await session.getToken();
  assert.equal(page.calls.filter((call) => call === "POST /auth/refresh").length, 1);
  // ... renewed (and the cookie rotated) within a minute of expiry.
  clock += 15 * 60 * 1000;
  const renewed = await session.getToken();
  assert.ok(renewed && renewed !== token);
  assert.notEqual(page.cookies.get("billing_refresh"), first);
  // Concurrent callers share one renewal.
  clock += 15 * 60 * 1000;
  const tokens = await Promise.all([session.getToken(), session.getToken(), session.getToken()]);
  assert.equal(new Set(tokens).size, 1);
  assert.equal(page.calls.filter((call) => call === "POST /auth/refresh").length, 3);
});

test("a 401 renews the token once and retries the request", async () => {
  const page = browser();
  const session = await GitHubSession.create({ baseUrl: API, fetch: page.fetch });
  await signIn(session, page, `ts-retry-${Date.now()}`);
  await session.getToken();
  let spoiled = 0;
  const spoilFirst = async (request: Request) => {
    if (spoiled++ === 0) request.headers.set("Authorization", "Bearer not.a.token");
    return fetch(request);
  };
  const billing = await createBillingClient({
    baseUrl: API,
    session,
    fetch: spoilFirst as typeof globalThis.fetch,
  });
  const me = unwrap(await billing.GET("/api/me"));
  assert.match(me.user.id, /^github:/);
  assert.equal(spoiled, 2); // the spoiled call, then the retry
  assert.equal(page.calls.filter((call) => call === "POST /auth/refresh").length, 2);
});

test("sign-out ends the session: no token afterwards", async () => {
  const page = browser();
  const session = await GitHubSession.create({ baseUrl: API, fetch: page.fetch });
  await signIn(session, page, `ts-out-${Date.now()}`);
  const stolen = page.cookies.get("billing_refresh")!;
  assert.ok(await session.getToken());
  await session.signOut();
  assert.equal(session.user, null);
  assert.equal(page.cookies.has("billing_refresh"), false);
  page.cookies.set("billing_refresh", stolen); // the old cookie is dead on the server too
  assert.equal(await session.renew(), null);
});

// The billing demo: plain fetch against the real API, as a front end would use it.
"use strict";

// A dev user's token (minted by /demo/token, development only) is kept in localStorage. A
// GitHub sign-in's access token is kept in memory only: the API's httpOnly refresh cookie
// renews it (POST /auth/refresh), after a reload too.
const TOKEN_KEY = "billing-demo-token";
const USER_KEY = "billing-demo-user";
const RENEW_MARGIN_MS = 60 * 1000;
const CREDITS_BEFORE_KEY = "billing-demo-credits-before";  // sessionStorage, across Checkout
const $ = (id) => document.getElementById(id);

const github = { token: null, expiresAt: 0, user: null, renewing: null };

class ApiError extends Error {
  constructor(status, error, headers) {
    super((error && error.message) || `HTTP ${status}`);
    this.status = status;
    this.code = error && error.code;
    this.error = error || {};
    this.retryAfter = headers.get("Retry-After");
  }
}

class NetworkError extends Error {}

async function send(method, path, body, headers) {
  try {
    return await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new NetworkError(String(err));
  }
}

async function call(method, path, body, { auth = true, retried = false } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const token = auth ? await currentToken() : null;
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await send(method, path, body, headers);
  if (response.status === 401 && token && github.token && !retried) {
    github.token = null; // renew once, then try again
    if (await renewGitHubToken()) return call(method, path, body, { auth, retried: true });
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data && data.error, response.headers);
  return data;
}

// -- signing in -----------------------------------------------------------------------------

async function currentToken() {
  const dev = localStorage.getItem(TOKEN_KEY);
  if (dev) return dev;
  if (github.token && github.expiresAt - RENEW_MARGIN_MS > Date.now()) return github.token;
  return github.user || github.token ? renewGitHubToken() : null;
}

// POST /auth/refresh: the refresh cookie (httpOnly, the browser sends it) for an access token.
// One renewal at a time; null when nobody is signed in with GitHub.
function renewGitHubToken() {
  github.renewing = github.renewing || (async () => {
    const response = await send("POST", "/auth/refresh", undefined, {
      Accept: "application/json", "X-Requested-With": "fetch",
    });
    const data = await response.json().catch(() => null);
    if (response.status === 401) {
      Object.assign(github, { token: null, expiresAt: 0, user: null });
      return null;
    }
    if (!response.ok) throw new ApiError(response.status, data && data.error, response.headers);
    Object.assign(github, { token: data.accessToken, expiresAt: data.expiresAt, user: data.user });
    return data.accessToken;
  })().finally(() => { github.renewing = null; });
  return github.renewing;
}

function signInWithGitHub() {
  localStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(USER_KEY);
  const returnTo = `${window.location.origin}/demo`;
  window.location.assign(`/auth/github/start?returnTo=${encodeURIComponent(returnTo)}`);
}

async function signOut() {
  clearError();
  localStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(USER_KEY);
  Object.assign(github, { token: null, expiresAt: 0, user: null });
  await send("POST", "/auth/logout", undefined, { "X-Requested-With": "fetch" });
  state.me = null;
  state.entitlements = null;
  $("account").hidden = true;
  showSignedIn();
  renderPlans();
}

function showSignedIn() {
  const dev = localStorage.getItem(USER_KEY);
  const user = github.user;
  let text = "";
  if (user) {
    text = `Signed in with GitHub as ${user.login} (${user.id})`;
  } else if (dev && localStorage.getItem(TOKEN_KEY)) {
    text = `Signed in as ${dev}`;
  }
  $("signed-in-as").textContent = text;
  $("sign-out").hidden = !text;
  $("github-sign-in").hidden = Boolean(user);
}

// After a reload (or coming back from GitHub, Checkout or the portal): a dev user's token,
// else the GitHub session's cookie. False when nobody is signed in.
async function restoreSession() {
  if (localStorage.getItem(TOKEN_KEY)) return true;
  try {
    return Boolean(await renewGitHubToken());
  } finally {
    showSignedIn();
  }
}

function takeSignInError() {
  const url = new URL(window.location.href);
  const error = url.searchParams.get("signinError");
  if (error !== null) {
    url.searchParams.delete("signinError");
    window.history.replaceState(null, "", url.toString());
  }
  return error;
}

const SIGN_IN_ERRORS = {
  signin_denied: "You cancelled signing in with GitHub.",
  signin_failed: "Signing in with GitHub did not work. Please try again.",
  identity_provider_unavailable: "GitHub can't be reached right now. Please try again shortly.",
};

// Every failure in words a person understands.
function describe(err) {
  if (err instanceof NetworkError) {
    return "Can't reach the billing server. Check your connection and try again.";
  }
  if (!(err instanceof ApiError)) return `Something went wrong: ${err.message}`;
  const e = err.error;
  if (err.status === 429) {
    const wait = err.retryAfter ? ` in ${err.retryAfter} seconds` : " in a moment";
    return `Too many requests. Please try again${wait}.`;
  }
  switch (err.code) {
    case "quota_exceeded":
      return `You've used all ${e.generationsLimit} generations of this period.` +
        (e.upgrade ? " Upgrade to Pro for unlimited generations." : "");
    case "card_declined":
      return `Your card was declined (${e.message}). You have not been charged.`;
    case "subscription_exists":
      return "You already have a subscription. Use Manage billing to change it.";
    case "missing_token":
    case "invalid_token":
    case "token_expired":
      return "Your session has expired. Sign in again.";
    case "payment_provider_unavailable":
      return "The payment provider is unreachable right now. Please try again shortly.";
    case "invalid_promotion_code":
      return "That promotion code is not valid.";
    case "invalid_quantity":
      return e.message || "That number of seats is not offered on this plan.";
    case "customer_not_found":
      return "There is no billing account yet: upgrade first.";
    default:
      return e.message || `The server answered ${err.status}.`;
  }
}

function showError(err) {
  const box = $("error");
  box.textContent = typeof err === "string" ? err : describe(err);
  box.hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

function banner(text) {
  $("banner").textContent = text;
  $("banner").hidden = !text;
}

function formatDate(ms) {
  if (!ms) return "—";
  return new Date(ms).toLocaleDateString("en-US", {
    year: "numeric", month: "short", day: "numeric", timeZone: "UTC",
  });
}

function capitalize(text) {
  return text ? text.charAt(0).toUpperCase() + text.slice(1) : text;
}

function money(amount, currency) {
  if (amount == null) return "";
  return new Intl.NumberFormat("en-US", { style: "currency", currency: currency.toUpperCase() })
    .format(amount / 100);
}

const INTERVAL_WORD = { month: "monthly", year: "yearly", week: "weekly", day: "daily" };
const LIVE = ["active", "trialing", "past_due"];

let state = { me: null, entitlements: null, plans: null, pending: null };

// -- rendering ------------------------------------------------------------------------------

function planSummary(me) {
  const tier = capitalize(me.user.tier);
  const sub = me.subscription;
  if (me.user.tier === "free" || !sub) return tier;
  const ends = sub.cancelAt || (sub.cancelAtPeriodEnd ? sub.currentPeriodEnd : null);
  if (ends) return `${tier} until ${formatDate(ends)}`;
  const word = INTERVAL_WORD[sub.interval] || sub.interval || "";
  return `${tier} (${word}), renews ${formatDate(sub.currentPeriodEnd)}`;
}

function renderAccount() {
  const { me, entitlements } = state;
  if (!me) return;
  $("account").hidden = false;
  $("plan-summary").textContent = planSummary(me);
  $("tier").textContent = capitalize(me.user.tier);
  $("status").textContent = me.user.status;
  $("email").textContent = me.user.email || "—";
  const sub = me.subscription;
  const live = Boolean(sub && LIVE.includes(sub.status));
  $("interval").textContent = live && sub.interval
    ? INTERVAL_WORD[sub.interval] || sub.interval : "—";
  const ending = live && (sub.cancelAt || sub.cancelAtPeriodEnd);
  $("renewal-label").textContent = ending ? "Ends" : "Renews";
  $("renewal").textContent = live ? formatDate(sub.cancelAt || sub.currentPeriodEnd) : "—";
  if (entitlements) {
    const limit = entitlements.generationsLimit;
    $("used").textContent = limit == null
      ? `${entitlements.generationsUsed}` : `${entitlements.generationsUsed} of ${limit}`;
    $("remaining").textContent = limit == null ? "Unlimited" : `${entitlements.generationsRemaining}`;
    // Credits keep a free user generating past the quota: no prompt while some are left.
    $("upgrade-prompt").hidden = !(limit != null && entitlements.generationsRemaining === 0 &&
      me.user.tier === "free" && !entitlements.credits);
    $("credits").textContent = `${entitlements.credits || 0}`;
  }
  renderCreditPack();
  $("manage").hidden = !me.user.stripeCustomerId;
  $("seats").textContent = live ? `${sub.quantity || 1}` : "—";
  renderTrial(sub);
  renderGrace(me, entitlements);
  renderChangePlan(live ? sub : null);
  renderPlans();
}

// The trial banner: while trialing, when it ends; after Stripe's 3-day warning, a call to act.
function renderTrial(sub) {
  const box = $("trial-banner");
  if (!sub || !sub.trialEndsAt) {
    box.hidden = true;
    return;
  }
  box.textContent = sub.trialWillEndAt
    ? `Your free trial ends on ${formatDate(sub.trialEndsAt)}. ` +
      "Add a card in Manage billing to keep Pro."
    : `Free trial until ${formatDate(sub.trialEndsAt)}.`;
  box.hidden = false;
}

// Dunning: past due, the paid plan lasts until the grace period ends (entitlements'
// accessEndsAt), unless the payment is fixed first.
function renderGrace(me, entitlements) {
  const box = $("grace");
  const ends = entitlements && entitlements.accessEndsAt;
  const pastDue = Boolean(me.subscription && me.subscription.status === "past_due");
  box.hidden = !(pastDue && ends);
  if (box.hidden) return;
  box.textContent = `You keep ${capitalize(me.user.tier)} until ${formatDate(ends)} ` +
    "while the payment is retried.";
}

function renderChangePlan(sub) {
  $("change-plan").hidden = !sub;
  if (!sub) return;
  const other = sub.interval === "year" ? "monthly" : "yearly";
  $("preview-switch").textContent = `Preview switching to ${other}`;
  $("preview-switch").dataset.plan = other;
  if (!state.pending) $("seats-input").value = `${sub.quantity || 1}`;
}

// POST /api/subscription/preview-change, shown before anything changes.
async function previewChange(change) {
  clearError();
  try {
    const reply = await call("POST", "/api/subscription/preview-change", change);
    const p = reply.preview;
    state.pending = { ...change, prorationDate: p.prorationDate };
    $("preview-summary").textContent =
      `Due now: ${money(p.amountDueNow, p.currency)}. ` +
      `Next invoice: ${money(p.nextInvoiceAmount, p.currency)} on ${formatDate(p.nextInvoiceAt)}.`;
    const lines = $("preview-lines");
    lines.replaceChildren();
    for (const line of p.lines) {
      const item = document.createElement("li");
      item.textContent = `${line.description}: ${money(line.amount, p.currency)}`;
      lines.append(item);
    }
    $("preview").hidden = false;
  } catch (err) {
    showError(err);
  }
}

async function confirmChange() {
  clearError();
  const change = state.pending;
  if (!change) return;
  $("confirm-change").disabled = true;
  try {
    const reply = await call("POST", "/api/subscription/change", change);
    const sub = reply.subscription;
    state.pending = null;
    $("preview").hidden = true;
    banner(`Done: ${INTERVAL_WORD[sub.interval] || sub.interval}, ${sub.quantity || 1} seat(s).`);
    await loadAccount();
  } catch (err) {
    showError(err);
  } finally {
    $("confirm-change").disabled = false;
  }
}

function cancelChange() {
  state.pending = null;
  $("preview").hidden = true;
}

// "Buy credits" only when the API sells a credit pack (GET /api/plans -> creditPack).
function renderCreditPack() {
  const pack = state.plans && state.plans.creditPack;
  const button = $("buy-credits");
  button.hidden = !(pack && state.me);
  if (pack) {
    button.textContent =
      `Buy ${pack.generations} credits: ${money(pack.amount, pack.currency || "usd")}`;
  }
}

function renderPlans() {
  if (!state.plans) return;
  $("pricing").hidden = false;
  const current = state.me ? state.me.user.tier : null;
  const hasLive = state.me && state.me.subscription && LIVE.includes(state.me.subscription.status);
  const root = $("plans");
  root.replaceChildren();
  root.className = "plans";
  for (const plan of state.plans.plans) {
    const box = document.createElement("div");
    box.className = "plan" + (plan.id === current ? " current" : "");
    box.id = `plan-${plan.id}`;
    const title = document.createElement("h3");
    title.textContent = plan.id + (plan.id === current ? " (current)" : "");
    const quota = document.createElement("p");
    quota.textContent = plan.generationsPerPeriod == null
      ? "Unlimited generations" : `${plan.generationsPerPeriod} generations a month`;
    const features = document.createElement("ul");
    for (const feature of plan.features) {
      const item = document.createElement("li");
      item.textContent = feature.replace(/_/g, " ");
      features.append(item);
    }
    box.append(title, quota, features);
    for (const price of plan.prices) {
      const button = document.createElement("button");
      button.id = `upgrade-${price.plan || price.id}`;
      button.textContent = `Upgrade: ${money(price.amount, price.currency)} / ${price.interval}`;
      button.disabled = Boolean(hasLive) || !state.me;
      button.addEventListener("click", () => upgrade(price));
      box.append(button);
    }
    root.append(box);
  }
}

// -- actions --------------------------------------------------------------------------------

async function loadAccount() {
  const [me, entitlements] = await Promise.all([
    call("GET", "/api/me"), call("GET", "/api/me/entitlements"),
  ]);
  state.me = me;
  state.entitlements = entitlements;
  renderAccount();
  document.dispatchEvent(new CustomEvent("account-loaded", { detail: me }));  // invoices.js
  return me;
}

async function loadPlans() {
  state.plans = await call("GET", "/api/plans", undefined, { auth: false });
  renderPlans();
  renderCreditPack();
}

async function signIn(userId) {
  if (github.user || github.token) {
    // One identity at a time: leaving a GitHub session for a dev user ends it.
    Object.assign(github, { token: null, expiresAt: 0, user: null });
    await send("POST", "/auth/logout", undefined, { "X-Requested-With": "fetch" });
  }
  const reply = await call("POST", "/demo/token", { userId }, { auth: false });
  localStorage.setItem(TOKEN_KEY, reply.token);
  localStorage.setItem(USER_KEY, reply.userId);
  showSignedIn();
  $("signed-in-as").textContent = `Signed in as ${reply.userId} (${reply.email})`;
}

async function generate() {
  clearError();
  $("generate").disabled = true;
  const creditsBefore = state.entitlements ? state.entitlements.credits || 0 : 0;
  let generated = false;
  try {
    const reply = await call("POST", "/api/usage/generations", {
      count: 1, idempotencyKey: crypto.randomUUID(),
    });
    generated = true;
    $("generate-result").textContent = reply.generationsRemaining == null
      ? "Generated! Unlimited generations left."
      : `Generated! ${reply.generationsRemaining} left this period.`;
  } catch (err) {
    $("generate-result").textContent = "";
    showError(err);
  } finally {
    $("generate").disabled = false;
  }
  await loadAccount().catch(showError);
  const creditsAfter = state.entitlements ? state.entitlements.credits || 0 : 0;
  if (generated && creditsAfter < creditsBefore) {  // beyond the quota: a credit paid for it
    $("generate-result").textContent = `Generated with a credit: ${creditsAfter} credits left.`;
  }
}

async function upgrade(price) {
  clearError();
  try {
    const body = price.plan ? { plan: price.plan } : { priceId: price.id };
    const seats = Number.parseInt($("checkout-seats").value, 10);
    if (seats > 1) body.quantity = seats;
    const code = $("promo-code").value.trim();
    if (code) body.promotionCode = code;
    const reply = await call("POST", "/api/create-checkout-session", body);
    window.location.assign(reply.session.url);
  } catch (err) {
    showError(err);
  }
}

// POST /api/create-credit-pack-session: a one-time Checkout; back on the success page, which
// knows from `purchase=credits` to wait for the credits rather than for a subscription.
async function buyCredits() {
  clearError();
  try {
    const origin = window.location.origin;
    const before = state.entitlements ? state.entitlements.credits || 0 : 0;
    sessionStorage.setItem(CREDITS_BEFORE_KEY, String(before));
    const reply = await call("POST", "/api/create-credit-pack-session", {
      successUrl: `${origin}/demo/success?purchase=credits&session_id={CHECKOUT_SESSION_ID}`,
      cancelUrl: `${origin}/demo/cancel`,
    });
    window.location.assign(reply.session.url);
  } catch (err) {
    showError(err);
  }
}

// Back from a credit pack's Checkout: the credits arrive with checkout.session.completed.
async function confirmCredits() {
  banner("Payment received. Adding your credits…");
  const before = Number(sessionStorage.getItem(CREDITS_BEFORE_KEY) || 0);
  for (let attempt = 0; attempt < 40; attempt += 1) {
    await loadAccount();
    if (state.entitlements && state.entitlements.credits > before) {
      sessionStorage.removeItem(CREDITS_BEFORE_KEY);
      banner(`Credits added: you have ${state.entitlements.credits} generations beyond your plan.`);
      return;
    }
    await sleep(attempt < 10 ? 500 : 1500);
  }
  banner("");
  showError("Your credits are taking longer than usual to arrive. Refresh in a minute.");
}

async function manageBilling() {
  clearError();
  try {
    const reply = await call("POST", "/api/create-portal-session", {});
    window.location.assign(reply.url);
  } catch (err) {
    showError(err);
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Back from Checkout: wait for the webhook to make the user Pro. After a few seconds ask the
// API to read the session (it fulfils the purchase too, in case webhooks are slow).
async function confirmPayment(sessionId) {
  banner("Payment received. Confirming your subscription…");
  for (let attempt = 0; attempt < 40; attempt += 1) {
    const me = await loadAccount();
    if (me.subscription && LIVE.includes(me.subscription.status) && me.user.tier !== "free") {
      // The two reads ran side by side: the entitlements may predate the webhook that made
      // the user Pro. Read them again now that the change is committed.
      await loadAccount();
      banner(`You're on ${capitalize(me.user.tier)}. Thank you!`);
      return;
    }
    if (attempt === 6 && sessionId) {
      await call("POST", "/api/retrieve-checkout-session", { sessionId }).catch(showError);
    }
    await sleep(attempt < 10 ? 500 : 1500);
  }
  banner("");
  showError("Your payment is taking longer than usual to confirm. Refresh in a minute.");
}

async function start() {
  $("user-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError();
    try {
      await signIn($("user-id").value.trim());
      await loadAccount();
    } catch (err) {
      showError(err);
    }
  });
  $("generate").addEventListener("click", generate);
  $("manage").addEventListener("click", manageBilling);
  $("buy-credits").addEventListener("click", buyCredits);
  $("refresh").addEventListener("click", () => {
    clearError();
    loadAccount().catch(showError);
  });
  $("preview-switch").addEventListener("click", () =>
    previewChange({ plan: $("preview-switch").dataset.plan }));
  $("preview-seats").addEventListener("click", () =>
    previewChange({ quantity: Number.parseInt($("seats-input").value, 10) }));
  $("confirm-change").addEventListener("click", confirmChange);
  $("cancel-change").addEventListener("click", cancelChange);
  $("github-sign-in").addEventListener("click", signInWithGitHub);
  $("sign-out").addEventListener("click", () => signOut().catch(showError));

  const saved = localStorage.getItem(USER_KEY);
  if (saved) $("user-id").value = saved;
  const failed = takeSignInError();
  if (failed) showError(SIGN_IN_ERRORS[failed] || "Signing in with GitHub did not work.");
  loadPlans().catch(showError);
  let signedIn = false;
  try {
    signedIn = await restoreSession();
  } catch (err) {
    showError(err);
  }
  renderPlans();
  if (!signedIn) return;

  const page = window.location.pathname.replace(/\/+$/, "");
  const params = new URLSearchParams(window.location.search);
  try {
    if (page.endsWith("/success") && params.get("purchase") === "credits") {
      await confirmCredits();
      return;
    }
    if (page.endsWith("/success")) {
      await confirmPayment(params.get("session_id"));
      return;
    }
    if (page.endsWith("/cancel")) {
      banner("Checkout canceled. You have not been charged.");
    } else if (page.endsWith("/account")) {
      banner("Back from the billing portal.");
    }
    await loadAccount();
  } catch (err) {
    showError(err);
  }
}

document.addEventListener("DOMContentLoaded", start);

// "Sign in with GitHub" run by the billing API, from the browser's side: send the browser to
// /auth/github/start, and after it lands back (no token in the URL), get access tokens from
// POST /auth/refresh, which reads the API's httpOnly refresh cookie (fetch with credentials).
// The access token lives in this object's memory only: never in localStorage, never in
// spark.kv (shared by every user of the app). See docs/frontend.md.
import { BillingApiError, type EndpointOptions, type ErrorBody, resolveBaseUrl } from "./core.js";
import type { components } from "./schema.js";

type SessionReply = components["schemas"]["SessionReply"];
type SessionUser = components["schemas"]["SessionUserOut"];

/** The query parameter a failed sign-in lands with: signin_denied, signin_failed,
 * identity_provider_unavailable. */
export const SIGN_IN_ERROR_PARAM = "signinError";

export interface GitHubSessionOptions extends EndpointOptions {
  fetch?: typeof globalThis.fetch;
  /** Renew this many seconds before the access token expires (default 60). */
  renewBeforeSeconds?: number;
  /** The clock, in ms (tests). */
  now?: () => number;
}

interface HeldToken {
  value: string;
  expiresAt: number; // ms
}

export class GitHubSession {
  /** Who is signed in (after the first successful getToken), or null. */
  user: SessionUser | null = null;
  private held: HeldToken | null = null;
  private inFlight: Promise<string | null> | null = null;

  private constructor(
    readonly baseUrl: string,
    private readonly options: GitHubSessionOptions,
  ) {}

  static async create(options: GitHubSessionOptions = {}): Promise<GitHubSession> {
    return new GitHubSession(await resolveBaseUrl(options), options);
  }

  /** Where to send the browser to sign in; it comes back to `returnTo` (an address on one of
   * the API's FRONTEND_URL origins; default: this page). */
  signInUrl(returnTo: string = currentPage()): string {
    return `${this.baseUrl}/auth/github/start?returnTo=${encodeURIComponent(returnTo)}`;
  }

  /** Leave for GitHub (a full-page navigation). */
  signIn(returnTo?: string): void {
    globalThis.location.assign(this.signInUrl(returnTo));
  }

  /** A bearer token for the next call: the one in memory while it has time left, else a
   * renewed one; null when nobody is signed in (call signIn). */
  async getToken(): Promise<string | null> {
    const margin = (this.options.renewBeforeSeconds ?? 60) * 1000;
    if (this.held && this.held.expiresAt - margin > this.now()) return this.held.value;
    return this.renew();
  }

  /** Ask the API for a new access token now (one request at a time; concurrent callers
   * share it). null when the session is over: the refresh cookie is missing, revoked or
   * expired. Other failures (429, 503, network) throw, and the session is kept. */
  renew(): Promise<string | null> {
    this.inFlight ??= this.refresh().finally(() => {
      this.inFlight = null;
    });
    return this.inFlight;
  }

  /** End the session on the API (the cookie is revoked and cleared) and forget the token. */
  async signOut(): Promise<void> {
    this.forget();
    const response = await this.post("/auth/logout");
    if (!response.ok) throw await apiError(response);
  }

  /** The `signinError` a failed sign-in landed with (or null), removed from the address bar. */
  static takeSignInError(): string | null {
    const location = globalThis.location;
    if (!location) return null;
    const url = new URL(location.href);
    const error = url.searchParams.get(SIGN_IN_ERROR_PARAM);
    if (error !== null) {
      url.searchParams.delete(SIGN_IN_ERROR_PARAM);
      globalThis.history?.replaceState(globalThis.history.state, "", url.toString());
    }
    return error;
  }

  private async refresh(): Promise<string | null> {
    const response = await this.post("/auth/refresh");
    if (response.status === 401) {
      this.forget();
      return null;
    }
    if (!response.ok) throw await apiError(response);
    const body = (await response.json()) as SessionReply;
    this.held = { value: body.accessToken, expiresAt: body.expiresAt };
    this.user = body.user;
    return body.accessToken;
  }

  private post(path: string): Promise<Response> {
    const fetcher = this.options.fetch ?? globalThis.fetch;
    return fetcher(`${this.baseUrl}${path}`, {
      method: "POST",
      credentials: "include", // the httpOnly refresh cookie
      headers: { Accept: "application/json", "X-Requested-With": "fetch" },
    });
  }

  private forget(): void {
    this.held = null;
    this.user = null;
  }

  private now(): number {
    return this.options.now ? this.options.now() : Date.now();
  }
}

function currentPage(): string {
  const href = globalThis.location?.href;
  if (!href) throw new Error("signInUrl needs a returnTo outside a browser");
  return href;
}

async function apiError(response: Response): Promise<BillingApiError> {
  const body = (await response.json().catch(() => null)) as { error?: ErrorBody } | null;
  return new BillingApiError(
    response,
    body?.error ?? { code: "internal_error", message: `HTTP ${response.status}` },
  );
}

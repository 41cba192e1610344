// What the client and the sign-in session share: where the API is, and its error type.
import type { components } from "./schema.js";

export type ErrorBody = components["schemas"]["ErrorBody"];
export type ErrorCode = components["schemas"]["ErrorCode"];

export const ENDPOINT_KEY = "stripe-api-endpoint";

/** The part of Spark's key-value store the client reads. */
export interface KeyValueStore {
  get<T = unknown>(key: string): Promise<T | undefined>;
}

export interface EndpointOptions {
  /** The API's address; default: the Spark store's "stripe-api-endpoint". */
  baseUrl?: string;
  /** The store to read "stripe-api-endpoint" from; default: `globalThis.spark.kv`. */
  kv?: KeyValueStore;
}

/** The API's base URL: the paths in the document start with /api, so a stored endpoint
 * ending in /api (the guide's form) is accepted with or without it. */
export async function resolveBaseUrl(options: EndpointOptions) {
  let endpoint = options.baseUrl;
  if (!endpoint) {
    const kv = options.kv ?? (globalThis as { spark?: { kv?: KeyValueStore } }).spark?.kv;
    if (!kv) throw new Error(`No baseUrl given and no spark.kv to read "${ENDPOINT_KEY}" from`);
    endpoint = (await kv.get<string>(ENDPOINT_KEY)) ?? undefined;
    if (!endpoint) throw new Error(`spark.kv has no "${ENDPOINT_KEY}": set it to your API's URL`);
  }
  return endpoint.replace(/\/+$/, "").replace(/\/api$/, "");
}

/** A non-2xx answer, with the API's documented error body. */
export class BillingApiError extends Error {
  readonly status: number;
  readonly code: ErrorCode;
  readonly body: ErrorBody;
  /** Seconds from the Retry-After header (429, 503). */
  readonly retryAfter: number | null;

  constructor(response: Response, body: ErrorBody) {
    super(body.message);
    this.name = "BillingApiError";
    this.status = response.status;
    this.code = body.code;
    this.body = body;
    const retry = response.headers.get("Retry-After");
    this.retryAfter = retry === null ? null : Number(retry);
  }
}

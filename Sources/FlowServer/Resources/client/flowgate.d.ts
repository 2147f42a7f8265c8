// Types of flowgate.js, for editors. The module itself needs no build step.

export type Method = "LIST" | "OPEN" | "UPDATE" | "DELETE" | "INDEX" | "CREATE" | "RUN";

/** A response envelope (SPEC §3). */
export interface Response<Data = unknown> {
  status: number;
  success: boolean;
  data?: Data;
  dataType: string;
  paging?: { next?: string; total?: number; position?: string };
  requestid?: string | number;
  message?: string;
  errorcode?: string;
  errorid?: string;
}

/** A watch event (SPEC §13.1), or the client's own "expired" (the position is gone: list again). */
export interface WatchEvent<Data = Record<string, unknown>> {
  event: "created" | "updated" | "deleted" | "ended" | "expired";
  watch?: string;
  namespace: string;
  objectid?: string;
  rev?: string;
  data?: Data;
  position?: string;
  reason?: string;
}

/** A failure response, or a client-side failure (`DISCONNECTED`, `CLIENT_TIMEOUT`). */
export class FlowError extends Error {
  errorcode?: string;
  errorid?: string;
  data?: unknown;
  response: Response;
}

export interface ConnectOptions {
  /** A session or personal access token, sent as ?token= (browsers cannot set headers on a WebSocket). */
  token?: string;
  /** Reconnect with jittered exponential backoff (default true). */
  reconnect?: boolean;
  minDelayMs?: number;
  maxDelayMs?: number;
  /** Default per-call timeout (30000). */
  timeoutMs?: number;
  /** Calls that may wait for the connection at once (1000). */
  maxQueued?: number;
  /** A connection attempt that has not opened by then is given up and retried (10000). */
  connectTimeoutMs?: number;
}

export interface CallOptions {
  objectid?: string;
  parameters?: unknown;
  data?: unknown;
  timeoutMs?: number;
  /** Wait for the connection when disconnected (default), or fail at once with DISCONNECTED. */
  waitForConnection?: boolean;
}

export interface Watch<Data = Record<string, unknown>> extends AsyncIterable<WatchEvent<Data>> {
  /** The last position delivered (resume point). */
  position?: string;
  on(kind: WatchEvent["event"] | "*", listener: (event: WatchEvent<Data>) => void): () => void;
  close(): void;
}

export interface LiveList<Data = Record<string, unknown>> {
  /** The objects, in insertion order. */
  readonly items: Data[];
  /** Settles once the first listing is in. */
  ready: Promise<void>;
  close(): void;
}

export class Connection {
  readonly state: "connecting" | "open" | "closed";
  on(kind: "open" | "close", listener: (event?: unknown) => void): () => void;
  call<Data = unknown>(method: Method, namespace: string, options?: CallOptions): Promise<Response<Data>>;
  watch<Data = Record<string, unknown>>(namespace: string, options?: { objectid?: string; filter?: Record<string, unknown>; since?: string }): Watch<Data>;
  listAndWatch<Data = Record<string, unknown>>(
    namespace: string,
    options?: { filter?: Record<string, unknown>; onChange?: (items: Data[]) => void; pageSize?: number },
  ): LiveList<Data>;
  close(): void;
}

export function connect(url: string, options?: ConnectOptions): Connection;

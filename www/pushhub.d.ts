// Type declarations of pushhub.js, the browser client of caddy-pushhub's
// json protocol (PROTOCOL.md). Checked by tsc in CI against types-check.ts.

/** The client's connection state. */
export type PushHubState = "connecting" | "online" | "reconnecting" | "closed";

/** Options of a PushHub. Exactly one of uid and token is needed. */
export interface PushHubOptions {
  /** Log in as this uid (`auth first_message`). */
  uid?: string;
  /** Or with this token (`auth jwt`); wins over uid. */
  token?: string;
  /** Milliseconds between application pings (default 25000; 0 turns them off). */
  pingInterval?: number;
  /** Milliseconds to wait for a reply, pong included (default 10000). */
  requestTimeout?: number;
  /** First reconnect delay in milliseconds (default 500). */
  minDelay?: number;
  /** Reconnect delay cap in milliseconds (default 30000). */
  maxDelay?: number;
  /** Reconnect after an unexpected close (default true). */
  reconnect?: boolean;
  /** Where the last position is kept across page reloads, per uid (default sessionStorage; null: memory only). */
  storage?: Storage | null;
}

/** How a resuming login's gap was filled. */
export interface Resume {
  since: number;
  recovered: boolean;
  replayed: number;
  reason?: "history_off" | "too_old" | "unknown_position" | "epoch_changed" | "store_unavailable";
}

/** The welcome frame: logged in. */
export interface Welcome {
  type: "welcome";
  uid: string;
  conn_id: string;
  /** The uid's position: the seq of the last message sent to it. */
  seq: number;
  /** The numbering seq belongs to, where the hub keeps history. */
  epoch?: string;
  resume?: Resume;
}

/** A pushed message. */
export interface Message<T = unknown> {
  type: "message";
  /** One more than the last message to this uid, the same on all its connections. */
  seq: number;
  data: T;
  /** The sending uid, when a client published it. */
  from?: string;
  /** The group it was sent to. */
  group?: string;
}

/** An error frame that answered no request, or a login that failed. */
export interface ErrorDetail {
  code: string;
  message: string;
}

/** The connection closed; reconnectIn is null when the client will not reconnect. */
export interface CloseDetail {
  code: number;
  reason: string;
  reconnectIn: number | null;
}

/** The events of a PushHub and the detail each carries. */
export interface PushHubEventMap {
  state: { state: PushHubState };
  welcome: Welcome;
  message: Message;
  error: ErrorDetail;
  close: CloseDetail;
}

/** The answer to send: connections the message was queued to, slow consumers it cut off. */
export interface SendReceipt {
  delivered: number;
  dropped: number;
}

/** Exactly one target: a uid, a group, or everyone. */
export type SendTarget =
  | { to: string; group?: never; all?: never }
  | { group: string; to?: never; all?: never }
  | { all: true; to?: never; group?: never };

/** An error answered by the server (an error frame) or raised by the client. */
export declare class PushHubError extends Error {
  constructor(code: string, message: string);
  /** A stable code such as "bad_target", "app_busy", "not_connected" or "timeout". */
  code: string;
}

/**
 * A connection to a push hub: it logs in, reconnects with backoff, resumes
 * from the last seq it saw and joins its groups again.
 */
export declare class PushHub extends EventTarget {
  /** Creates the client and connects at once; throws PushHubError without uid or token. */
  constructor(url: string, options?: PushHubOptions);

  readonly url: string;
  readonly options: Readonly<PushHubOptions>;
  readonly state: PushHubState;
  /** The uid the server logged us in as; null before the first welcome. */
  readonly uid: string | null;
  /** The server's id of the current connection. */
  readonly connId: string | null;
  /** The last message sequence number seen; sent as `since` on login. */
  readonly lastSeq: number | null;
  /** The numbering lastSeq belongs to (with history on). */
  readonly epoch: string | null;
  /** The groups joined through this client, joined again on reconnect. */
  readonly groups: ReadonlySet<string>;

  /** Adds a listener that receives the event's detail; returns its remover. */
  on<K extends keyof PushHubEventMap>(type: K, fn: (detail: PushHubEventMap[K]) => void): () => void;

  /** Sends data to a uid, a group or everyone (needs allow_client_publish). */
  send(msg: SendTarget & { data: unknown }): Promise<SendReceipt>;

  /** Sends data to the application behind the hub; settled once queued for it. */
  app(data: unknown): Promise<void>;

  /** Joins a group (needs allow_client_groups); joined again after a reconnect. */
  join(group: string): Promise<void>;

  /** Leaves a group. */
  leave(group: string): Promise<void>;

  /** Pings the server; resolves to the round-trip time in milliseconds. */
  ping(): Promise<number>;

  /** Closes the connection for good: no reconnect. */
  close(): void;

  addEventListener<K extends keyof PushHubEventMap>(
    type: K,
    listener: (ev: CustomEvent<PushHubEventMap[K]>) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  removeEventListener<K extends keyof PushHubEventMap>(
    type: K,
    listener: (ev: CustomEvent<PushHubEventMap[K]>) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
}

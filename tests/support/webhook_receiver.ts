/**
 * A webhook receiver on loopback: a real HTTP server that checks every request with the
 * `standardwebhooks` verifier, as a customer's endpoint would, and answers as scripted.
 *
 * @module
 */
import { Webhook } from "standardwebhooks";

/** One request the receiver got. */
export interface ReceivedWebhook {
  /** `webhook-id`: the event id. */
  id: string;
  // deno-lint-ignore no-explicit-any -- tests index into the payload.
  payload: any;
  /** Signatures in `webhook-signature` (one per live secret). */
  signatures: string[];
  /** Which of the receiver's secrets verified it (empty: none did). */
  verifiedWith: string[];
  /** The status the receiver answered. */
  status: number;
}

/**
 * How the receiver answers: a status code, or "hang" (never answers). Closing the receiver
 * (`close()`) makes it not listen at all; `open()` listens again on the same port.
 */
export type ReceiverBehavior = number | "hang";

export interface WebhookReceiver {
  port: number;
  /** `http://127.0.0.1:<port>/hook` */
  url: string;
  /** Every request, in arrival order, answered or not. */
  requests: ReceivedWebhook[];
  /** Requests answered 2xx and verified, in arrival order. */
  readonly accepted: ReceivedWebhook[];
  behavior: ReceiverBehavior;
  /** The secrets to verify with; set after registering the endpoint. */
  secrets: string[];
  /** Resolves once `pred()` holds, checked at each request; rejects after `timeoutMs`. */
  waitFor(pred: () => boolean, what: string, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
  open(): Promise<void>;
}

export async function startWebhookReceiver(
  options: { port?: number; behavior?: ReceiverBehavior } = {},
): Promise<WebhookReceiver> {
  let server: Deno.HttpServer<Deno.NetAddr> | null = null;
  const waiters = new Set<() => void>();
  const hung: (() => void)[] = [];
  const notify = () => waiters.forEach((w) => w());

  const receiver: WebhookReceiver = {
    port: options.port ?? 0,
    url: "",
    requests: [],
    get accepted() {
      return receiver.requests.filter((r) =>
        r.status >= 200 && r.status < 300 && r.verifiedWith.length > 0
      );
    },
    behavior: options.behavior ?? 200,
    secrets: [],
    waitFor(pred, what, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!pred()) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(
            new Error(
              `Cannot see ${what} within ${timeoutMs} ms: ${receiver.requests.length} requests, ` +
                `${receiver.accepted.length} accepted`,
            ),
          );
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    async close() {
      hung.splice(0).forEach((release) => release());
      await server?.shutdown();
      server = null;
    },
    open() {
      server = Deno.serve(
        { hostname: "127.0.0.1", port: receiver.port, onListen() {} },
        async (req) => {
          const body = await req.text();
          const headers = Object.fromEntries(req.headers);
          const verifiedWith = receiver.secrets.filter((secret) => {
            try {
              new Webhook(secret).verify(body, headers);
              return true;
            } catch {
              return false;
            }
          });
          const behavior = receiver.behavior;
          const status = behavior === "hang" ? 0 : verifiedWith.length ? behavior : 401;
          let payload: unknown = null;
          try {
            payload = JSON.parse(body);
          } catch {
            // recorded as null
          }
          receiver.requests.push({
            id: headers["webhook-id"] ?? "",
            payload,
            signatures: (headers["webhook-signature"] ?? "").split(" ").filter(Boolean),
            verifiedWith,
            status,
          });
          notify();
          if (behavior === "hang") {
            await new Promise<void>((resolve) => hung.push(resolve));
            return new Response("too late", { status: 200 });
          }
          return new Response(status < 300 ? "ok" : "no", { status });
        },
      );
      receiver.port = server.addr.port;
      receiver.url = `http://127.0.0.1:${receiver.port}/hook`;
      return Promise.resolve();
    },
  };
  await receiver.open();
  return receiver;
}

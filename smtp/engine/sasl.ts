/**
 * AUTH's mechanisms for the engine's connection (connection.ts): PLAIN, LOGIN and XOAUTH2 with
 * or without an initial response, `*` to abort, and smtp-server's replies for each outcome.
 * A listener that asks for another mechanism keeps smtp-server's connection (install.ts).
 *
 * Ported from smtp-server 3.21.6 lib/sasl.js (MIT, Andris Reinman).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { CONTROL_CHARS } from "./address_command.ts";

type Done = () => void;
// deno-lint-ignore no-explicit-any
type Callback = (err?: any, result?: any) => void;
// deno-lint-ignore no-explicit-any
type AnyRecord = Record<string, any>;

/** What a mechanism needs of the connection it runs on. */
export interface SaslConnection {
  session: AnyRecord;
  _server: { onAuth(auth: AnyRecord, session: AnyRecord, callback: Callback): void };
  /** The handler the next line goes to instead of a command (a continuation of AUTH). */
  _nextHandler: ((line: string, callback: Done) => void) | false;
  send(code: number, data?: unknown, context?: unknown): void;
  _transmissionType(): string;
}

type Mechanism = (this: SaslConnection, args: string[], callback: Done) => void;

function authResult(
  conn: SaslConnection,
  callback: Done,
  onFailure: (response: AnyRecord) => void,
): Callback {
  return (err, response) => {
    if (err) {
      conn.send(err.responseCode || 535, err.message);
      return callback();
    }
    response = response || {};
    if (!response.user) return onFailure(response);
    conn.session.user = response.user;
    conn.session.transmissionType = conn._transmissionType();
    conn.send(235, "Authentication successful");
    callback();
  };
}

/** The reply to an onAuth that answered with no user (PLAIN and LOGIN). */
function credentialsInvalid(conn: SaslConnection, response: AnyRecord, callback: Done) {
  conn.send(
    response.responseCode || 535,
    response.message || "Error: Authentication credentials invalid",
  );
  callback();
}

function plainToken(this: SaslConnection, canAbort: boolean, raw: string, callback: Done) {
  const token = (raw || "").toString().trim();
  if (canAbort && token === "*") {
    this.send(501, "Authentication aborted");
    return callback();
  }
  const data = Buffer.from(token, "base64").toString().split("\x00");
  if (data.length !== 3) {
    this.send(501, "Error: invalid userdata");
    return callback();
  }
  const authzid = data[0] || "";
  const authcid = data[1] || "";
  const username = authcid || authzid;
  const password = data[2] || "";
  if (CONTROL_CHARS.test(username) || CONTROL_CHARS.test(authzid)) {
    this.send(501, "Error: invalid userdata");
    return callback();
  }
  this._server.onAuth(
    { method: "PLAIN", username, authcid, authzid, password },
    this.session,
    authResult(this, callback, (response) => credentialsInvalid(this, response, callback)),
  );
}

function loginUsername(this: SaslConnection, canAbort: boolean, raw: string, callback: Done) {
  let username = (raw || "").toString().trim();
  if (canAbort && username === "*") {
    this.send(501, "Authentication aborted");
    return callback();
  }
  username = Buffer.from(username, "base64").toString();
  if (!username) {
    this.send(501, "Error: missing username");
    return callback();
  }
  if (CONTROL_CHARS.test(username)) {
    this.send(501, "Error: invalid userdata");
    return callback();
  }
  this._nextHandler = loginPassword.bind(this, username);
  this.send(334, "UGFzc3dvcmQ6");
  return callback();
}

function loginPassword(this: SaslConnection, username: string, raw: string, callback: Done) {
  let password = (raw || "").toString().trim();
  if (password === "*") {
    this.send(501, "Authentication aborted");
    return callback();
  }
  password = Buffer.from(password, "base64").toString();
  this._server.onAuth(
    { method: "LOGIN", username, password },
    this.session,
    authResult(this, callback, (response) => credentialsInvalid(this, response, callback)),
  );
}

function xoauth2Token(this: SaslConnection, canAbort: boolean, raw: string, callback: Done) {
  const token = (raw || "").toString().trim();
  if (canAbort && token === "*") {
    this.send(501, "Authentication aborted");
    return callback();
  }
  let username: string | undefined;
  let accessToken: string | undefined;
  for (const field of Buffer.from(token, "base64").toString().split("\x01")) {
    const part = field.split("=");
    const key = part.shift()!.toLowerCase();
    const value = part.join("=").trim();
    if (key === "user") {
      username = value;
    } else if (key === "auth") {
      const words = value.split(/\s+/);
      if (words.shift()!.toLowerCase() === "bearer") accessToken = words.join(" ");
    }
  }
  if (!username || !accessToken || CONTROL_CHARS.test(username)) {
    this.send(501, "Error: invalid userdata");
    return callback();
  }
  this._server.onAuth(
    { method: "XOAUTH2", username, accessToken },
    this.session,
    authResult(this, callback, (response) => {
      this._nextHandler = (_data: string, cb: Done) => {
        this.send(535, "Error: Username and Password not accepted");
        return cb();
      };
      this.send(
        response.responseCode || 334,
        Buffer.from(JSON.stringify(response.data || {})).toString("base64"),
      );
      callback();
    }),
  );
}

/**
 * AUTH <mechanism> [initial-response]: with the response, `token` takes it at once; without, the
 * client gets `challenge` (334) and its next line goes to `token`, where `*` aborts.
 */
function mechanism(
  syntax: string,
  challenge: string | undefined,
  token: (this: SaslConnection, canAbort: boolean, raw: string, callback: Done) => void,
): Mechanism {
  return function (this: SaslConnection, args: string[], callback: Done) {
    if (args.length > 1) {
      this.send(501, `Error: syntax: ${syntax}`);
      return callback();
    }
    if (!args.length) {
      this._nextHandler = token.bind(this, true);
      this.send(334, challenge);
      return callback();
    }
    token.call(this, false, args[0]!, callback);
  };
}

export const SASL: Record<string, Mechanism | undefined> = Object.assign(Object.create(null), {
  PLAIN: mechanism("AUTH PLAIN token", undefined, plainToken),
  LOGIN: mechanism("AUTH LOGIN", "VXNlcm5hbWU6", loginUsername),
  XOAUTH2: mechanism("AUTH XOAUTH2 token", undefined, xoauth2Token),
});

/** The AUTH mechanisms this connection has (a listener asking for others keeps smtp-server's). */
export const ENGINE_AUTH_METHODS = new Set(Object.keys(SASL));

/**
 * What a session's socket has from its listener (accepted_sockets.ts): TCP_NODELAY, so a reply
 * written behind another never waits for the client's delayed ACK, and its local address.
 * TCP_NODELAY is read from the server's own socket by a Python client (pidfd_getfd, as root).
 */
import assert from "node:assert/strict";
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from "smtp-server";
import { applySmtpServerPatches, primeListener } from "./smtp_server_patches.ts";
import { listeningPort, sessionGuards } from "./server.ts";
import { loadConfig } from "../core/config/load.ts";

applySmtpServerPatches();

Deno.test({
  name: "a session's socket has TCP_NODELAY and its local address from the listener it came in on",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const sessions: SMTPServerSession[] = [];
    const server = new SMTPServer({
      postern: sessionGuards(loadConfig({}), { earlyTalkerPause: false, authOnlyOverTls: false }),
      name: "relay.test",
      logger: false,
      disableReverseLookup: true,
      hideSTARTTLS: true,
      authOptional: true,
      onConnect(session, callback) {
        sessions.push(session);
        callback();
      },
    } as SMTPServerOptions);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    primeListener(server);
    const port = listeningPort(server);
    try {
      const script = `
import ctypes, os, socket, sys
port = int(sys.argv[1]); pid = int(sys.argv[2])
c = socket.create_connection(("127.0.0.1", port))
assert c.recv(200).startswith(b"220"), "no greeting"
libc = ctypes.CDLL(None, use_errno=True)
pidfd = libc.syscall(434, pid, 0)  # pidfd_open
assert pidfd >= 0, "pidfd_open"
found = []
for name in os.listdir(f"/proc/{pid}/fd"):
    try:
        if not os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
            continue
    except OSError:
        continue
    fd = libc.syscall(438, pidfd, int(name), 0)  # pidfd_getfd
    if fd < 0:
        continue
    s = socket.socket(fileno=fd)
    try:
        if s.family == socket.AF_INET and s.getpeername() == c.getsockname():
            found.append(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
    except OSError:
        pass
    s.close()
print(found)
c.close()
`;
      const out = await new Deno.Command("python3", {
        args: ["-c", script, String(port), String(Deno.pid)],
      }).output();
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      const found = JSON.parse(new TextDecoder().decode(out.stdout).trim()) as number[];
      assert.equal(found.length, 1, "the session's socket was not found");
      assert.notEqual(found[0], 0, "TCP_NODELAY is off on the session's socket");
      assert.equal(sessions.length, 1);
      assert.equal(sessions[0]!.localAddress, "127.0.0.1");
      assert.equal(sessions[0]!.localPort, port);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  },
});

/**
 * The only place SMTP reply codes are chosen. Each reply carries its RFC 3463 enhanced code in the
 * text; smtp_server_patches.ts makes smtp-server send it as-is instead of adding a generic one.
 */

export interface Reply {
  responseCode: number;
  message: string;
}

function reply(code: number, enhanced: string, text: string): Reply {
  return { responseCode: code, message: `${enhanced} ${text}` };
}

export const replies = {
  queued: (id: string) => `2.0.0 OK queued as ${id}`,
  shuttingDown: (host: string) => reply(421, "4.3.2", `${host} shutting down, try again later`),
  authRequired: () => reply(530, "5.7.0", "Authentication required"),
  authFailed: () => reply(535, "5.7.8", "Authentication credentials invalid"),
  authTemporary: () => reply(454, "4.7.0", "Temporary authentication failure"),
  credentialRevoked: () => reply(535, "5.7.8", "Credential no longer valid"),
  relayDenied: () => reply(554, "5.7.1", "Relay access denied"),
  badSender: (why: string) => reply(553, "5.1.7", `Bad sender address: ${why}`),
  badRecipient: (why: string) => reply(553, "5.1.3", `Bad recipient address: ${why}`),
  badRecipientDomain: () => reply(550, "5.1.2", "Bad destination domain"),
  tooLarge: (limit: number) =>
    reply(552, "5.3.4", `Message exceeds the size limit of ${limit} bytes`),
  storeFailed: () => reply(451, "4.3.0", "Queue temporarily unavailable, try again later"),
};

/** Enhanced codes for replies smtp-server writes itself (RFC 3463, RFC 4954 §6 for 538). */
export const ENHANCED_OVERRIDES: Record<number, string> = {
  538: "5.7.11",
};

/**
 * What a DNS answer about a recipient domain means for its mail, and which bounces put an address
 * on the suppression list. Pure policy: the resolver reports what the name server said, this says
 * what the queue does with it.
 *
 * DNS answers (RFC 1035, RFC 2308, RFC 5321 §5.1, RFC 7505):
 * - NXDOMAIN for the recipient domain, or a null MX (`MX 0 .`): the domain takes no mail, bounce.
 * - MX hosts that are NXDOMAIN or have no A/AAAA: defer while the message may still be tried (the
 *   zone may be mid-change); it expires, and so bounces, only at the maximum age.
 * - SERVFAIL, REFUSED, a timeout, a truncated or malformed answer, an MX host whose address
 *   lookup fails that way: temporary by RFC 2308 §7, defer and retry on the schedule.
 *
 * @module
 */
import type { BounceCategory, Classification } from "./classify.ts";

/** The DNS reason an attempt never reached a server. */
export type DnsFailure =
  /** The recipient domain does not exist (NXDOMAIN). */
  | "nxdomain"
  /** The domain publishes a null MX (RFC 7505): it accepts no mail. */
  | "null_mx"
  /** No MX host (nor, without MX, the domain itself) has an address: NXDOMAIN or NODATA. */
  | "no_address"
  /** The name server failed, refused, timed out or answered something unreadable. */
  | "temporary";

/** The verdict on a DNS failure; only a domain that does not exist or says so is permanent. */
export function classifyDnsFailure(failure: DnsFailure): Classification {
  switch (failure) {
    case "nxdomain":
    case "null_mx":
      return { kind: "permanent", category: "bad_domain" };
    case "no_address":
      return { kind: "transient", category: "bad_domain" };
    case "temporary":
      return { kind: "transient", category: "other" };
  }
}

/**
 * Whether one bounce of this category suppresses the address. Only a receiving server's verdict
 * that the mailbox does not exist does: the address itself is bad and stays bad. Not
 * `bad_domain` (a domain that does not resolve today may come back, and a DNS failure at our
 * side or the receiver's must not silence the address for good), nor a full mailbox, a policy
 * block, throttling or TLS trouble, which are about the moment or about us, not the address.
 */
export function bounceSuppresses(
  category: string | null,
): category is Extract<BounceCategory, "invalid_recipient"> {
  return category === "invalid_recipient";
}

/**
 * Whether an expiry counts toward the expiry streak that suppresses an address: not when the
 * last failure was DNS (the domain's name servers or MX hosts were broken, not the mailbox).
 */
export function expiryCountsTowardSuppression(dnsCaused: boolean): boolean {
  return !dnsCaused;
}

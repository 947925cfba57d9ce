/**
 * The email that carries an aggregate TLS report (RFC 8460 §5.3): multipart/report with
 * report-type "tlsrpt", a short human part, and the JSON report gzipped as
 * application/tlsrpt+gzip, named `<submitter>!<policy-domain>!<start>!<end>!<id>.json.gz`.
 *
 * @module
 */
import { gzipSync } from "node:zlib";
import { Buffer } from "node:buffer";

export interface TlsReportMail {
  from: string;
  to: string;
  submitter: string;
  domain: string;
  day: string;
  reportId: string;
  report: Record<string, unknown>;
  now: number;
  messageId: string;
}

export function gzipReport(report: Record<string, unknown>): Uint8Array {
  return new Uint8Array(gzipSync(new TextEncoder().encode(JSON.stringify(report))));
}

export function buildTlsReportMail(m: TlsReportMail): Uint8Array {
  const boundary = `tlsrpt-${m.messageId.replace(/[^A-Za-z0-9]/g, "").slice(0, 30)}`;
  const start = Math.floor(Date.parse(`${m.day}T00:00:00Z`) / 1000);
  const end = start + 86_399;
  const file = `${m.submitter}!${m.domain}!${start}!${end}!${m.reportId}.json.gz`;
  const gz = Buffer.from(gzipReport(m.report)).toString("base64").replace(/.{1,76}/g, "$&\r\n");
  const lines = [
    `From: <${m.from}>`,
    `To: <${m.to}>`,
    `Subject: Report Domain: ${m.domain} Submitter: ${m.submitter} Report-ID: <${m.reportId}>`,
    `Date: ${new Date(m.now).toUTCString().replace("GMT", "+0000")}`,
    `Message-ID: ${m.messageId}`,
    `TLS-Report-Domain: ${m.domain}`,
    `TLS-Report-Submitter: ${m.submitter}`,
    "MIME-Version: 1.0",
    `Content-Type: multipart/report; report-type="tlsrpt"; boundary="${boundary}"`,
    "",
    `--${boundary}`,
    "Content-Type: text/plain; charset=utf-8",
    "",
    `This is an aggregate TLS report (RFC 8460) from ${m.submitter} for ${m.domain}, ${m.day}.`,
    "",
    `--${boundary}`,
    `Content-Type: application/tlsrpt+gzip; name="${file}"`,
    "Content-Transfer-Encoding: base64",
    `Content-Disposition: attachment; filename="${file}"`,
    "",
    gz.trimEnd(),
    `--${boundary}--`,
    "",
  ];
  return new TextEncoder().encode(lines.join("\r\n"));
}

/**
 * The daily aggregate TLS report (RFC 8460 §5): for each recipient domain with sessions on a
 * UTC day and a `_smtp._tls` TXT record, the day's report goes to each `rua` URI once the day
 * is over: mailto: through Postern's own queue (gzipped JSON attachment), https: as a POST of
 * the gzipped JSON. A KV marker per day and domain makes it once across nodes and restarts.
 */
import type { Logger } from "../core/log.ts";
import { accept, type IntakeDeps } from "../core/intake.ts";
import { markTlsReportSent, readTlsReports, tlsReportDays } from "../core/store/tls_reports.ts";
import { buildTlsReport, parseTlsRptRecord, utcDate } from "../core/policy/tls_report.ts";
import { buildTlsReportMail, gzipReport } from "../core/mail/tls_report_mail.ts";
import { httpsByAddress } from "../core/mail/https_by_address.ts";
import type { TlsReportControl, TlsReportDelivery } from "../core/tls_report_control.ts";
import { newId } from "../core/ids.ts";

export interface TlsReportSenderDeps {
  kv: Deno.Kv;
  intake: IntakeDeps;
  /** The account report mail is queued under. */
  account: string;
  hostname: string;
  log: Logger;
  now(): number;
  /** TXT records through POSTERN_DNS. */
  txt(name: string): Promise<string[]>;
  /** A/AAAA through POSTERN_DNS, for https: report URIs. */
  addresses(name: string): Promise<string[]>;
  ca?: string[] | undefined;
}

const HOUR_MS = 3_600_000;

export class TlsReportSender implements TlsReportControl {
  #deps: TlsReportSenderDeps;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(deps: TlsReportSenderDeps) {
    this.#deps = deps;
  }

  /** Hourly: every finished day with counters whose reports are not out yet is sent. */
  start(intervalMs = HOUR_MS) {
    const tick = () => this.sendDue().catch((err) => this.#deps.log.warn("tlsrpt.failed", { err }));
    this.#timer = setInterval(tick, intervalMs);
    tick();
  }

  stop() {
    clearInterval(this.#timer);
  }

  async sendDue(): Promise<void> {
    const today = utcDate(this.#deps.now());
    for (const day of await tlsReportDays(this.#deps.kv)) {
      if (day < today) await this.sendDay(day);
    }
  }

  async sendDay(day: string): Promise<TlsReportDelivery[]> {
    const { kv, log, hostname, now } = this.#deps;
    const out: TlsReportDelivery[] = [];
    for (const report of await readTlsReports(kv, day)) {
      let rua: string[];
      try {
        rua = parseTlsRptRecord(await this.#deps.txt(`_smtp._tls.${report.domain}`));
      } catch (err) {
        log.info("tlsrpt.txt_failed", { domain: report.domain, error: String(err) });
        continue; // asked again next hour
      }
      if (!(await markTlsReportSent(kv, day, report.domain, now()))) continue;
      if (rua.length === 0) continue;
      const json = buildTlsReport(report, {
        organization: hostname,
        contact: `postmaster@${hostname}`,
      });
      const reportId = String(json["report-id"]);
      for (const uri of rua) {
        const r = uri.toLowerCase().startsWith("mailto:")
          ? await this.#mail(uri.slice(7), report.domain, day, reportId, json)
          : await this.#post(uri, json);
        out.push({ domain: report.domain, to: uri, ...r });
        log.info("tlsrpt.sent", { domain: report.domain, day, to: uri, ok: r.ok });
      }
    }
    return out;
  }

  async #mail(
    to: string,
    domain: string,
    day: string,
    reportId: string,
    report: Record<string, unknown>,
  ): Promise<{ ok: boolean; error?: string }> {
    const { hostname, now } = this.#deps;
    const from = `postmaster@${hostname}`;
    const body = buildTlsReportMail({
      from,
      to,
      submitter: hostname,
      domain,
      day,
      reportId,
      report,
      now: now(),
      messageId: `<${newId(now()).toLowerCase()}.tlsrpt@${hostname}>`,
    });
    const result = await accept(this.#deps.intake, {
      account: this.#deps.account,
      credentialId: null,
      mailFrom: from,
      recipients: [to],
      clientAddress: "127.0.0.1",
      heloName: hostname,
      protocol: "LOCAL",
      via: "report",
      body: (async function* () {
        yield body;
      })(),
    });
    return result.ok ? { ok: true } : { ok: false, error: result.reason };
  }

  async #post(
    uri: string,
    report: Record<string, unknown>,
  ): Promise<{ ok: boolean; error?: string }> {
    const url = new URL(uri);
    const addresses = await this.#deps.addresses(url.hostname).catch(() => []);
    if (addresses.length === 0) return { ok: false, error: `${url.hostname} did not resolve` };
    const res = await httpsByAddress({
      address: addresses[0]!,
      host: url.hostname,
      port: url.port ? Number(url.port) : 443,
      path: url.pathname + url.search,
      method: "POST",
      headers: { "content-type": "application/tlsrpt+gzip" },
      body: gzipReport(report),
      ca: this.#deps.ca,
    });
    if (!res.ok) return { ok: false, error: res.reason };
    return res.status >= 200 && res.status < 300
      ? { ok: true }
      : { ok: false, error: `HTTP ${res.status}` };
  }
}

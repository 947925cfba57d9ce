/** What the HTTP API may ask of the TLS report sender (actors/tls_report_sender.ts). */
export interface TlsReportDelivery {
  domain: string;
  /** The rua URI the report went to. */
  to: string;
  ok: boolean;
  error?: string;
}

export interface TlsReportControl {
  /** Sends `day`'s reports (YYYY-MM-DD) now, to domains not yet sent that day's. */
  sendDay(day: string): Promise<TlsReportDelivery[]>;
}

// Types for the one function of libmime that sender_domains.ts uses. libmime ships none.

declare const libmime: {
  /** Decodes RFC 2047 encoded-words (`=?utf-8?q?…?=`) in a header value. */
  decodeWords(value: string): string;
};
export default libmime;

/**
 * A real browser for the dashboard tests: Debian's chromium, headless, driven by puppeteer-core.
 * Each launch gets a fresh profile directory (removed on close) and nothing that phones home.
 * Screenshots go to a folder outside the repository: $POSTERN_DASHBOARD_SHOTS, else
 * $TMPDIR/postern-dashboard-shots.
 *
 * @module
 */
import puppeteer, { type Browser, type Page } from "puppeteer-core";

export const CHROMIUM = "/usr/bin/chromium";

/** Why the browser tests cannot run here, or null when they can. */
export function browserMissing(): string | null {
  try {
    Deno.statSync(CHROMIUM);
    return null;
  } catch {
    return `${CHROMIUM} is not installed (apt-get install chromium; .ci/run installs it)`;
  }
}

export const SHOTS_DIR = Deno.env.get("POSTERN_DASHBOARD_SHOTS") ??
  `${Deno.env.get("TMPDIR") ?? "/tmp"}/postern-dashboard-shots`;

export interface TestBrowser {
  browser: Browser;
  /** A page in a fresh incognito-like context (its own cookies). */
  newPage(viewport?: { width: number; height: number }): Promise<Page>;
  /** Saves a full-page screenshot as `<name>.png` in SHOTS_DIR. */
  shot(page: Page, name: string): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export async function launchBrowser(): Promise<TestBrowser> {
  const profile = await Deno.makeTempDir({ prefix: "postern_chromium_" });
  await Deno.mkdir(SHOTS_DIR, { recursive: true });
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      `--user-data-dir=${profile}`,
    ],
    protocolTimeout: 60_000,
  });
  return {
    browser,
    async newPage(viewport = { width: 1280, height: 900 }) {
      const context = await browser.createBrowserContext();
      const page = await context.newPage();
      // Generous: the suite runs in parallel on a small, shared machine.
      page.setDefaultTimeout(60_000);
      page.setDefaultNavigationTimeout(60_000);
      await page.setViewport(viewport);
      return page;
    },
    async shot(page, name) {
      await page.screenshot({ path: `${SHOTS_DIR}/${name}.png`, fullPage: true });
    },
    async [Symbol.asyncDispose]() {
      await browser.close();
      await Deno.remove(profile, { recursive: true }).catch(() => {});
    },
  };
}

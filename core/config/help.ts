/**
 * `main.ts --help`: the settings start-up reads, generated from the schema so the list is never
 * behind the code. Meanings and defaults are in README's "Settings" table.
 */
import { envSettings } from "./load.ts";

export function helpText(version: string): string {
  const rows = Object.entries(envSettings()).sort(([a], [b]) => a.localeCompare(b));
  const width = Math.max(...rows.map(([name]) => name.length));
  return [
    `Postern ${version}: an SMTP relay with an HTTP API.`,
    "",
    "Usage: deno task start [--help | --version]",
    "",
    "Settings are environment variables (or, by the field name on the right, keys of the JSON",
    "file named by POSTERN_CONFIG; the environment wins). An unknown POSTERN_* variable or key",
    "stops start-up. Meanings and defaults: README.md, section Settings.",
    "",
    `  ${"POSTERN_CONFIG".padEnd(width)}  a JSON file of settings`,
    ...rows.map(([name, field]) => `  ${name.padEnd(width)}  ${field}`),
    "",
    "Other commands: deno task admin-token (a new admin token for a stopped relay).",
    "",
  ].join("\n");
}

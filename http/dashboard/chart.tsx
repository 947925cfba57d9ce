/**
 * The overview's chart as SVG drawn on the server: one stacked bar per hour (delivered,
 * deferred, bounced, complained) and a line for accepted. No script, no library, and the
 * numbers it draws are also in the table beside it.
 */

export const SERIES = [
  { type: "delivered", color: "#2e9e5b" },
  { type: "deferred", color: "#e0a21b" },
  { type: "bounced", color: "#d0453a" },
  { type: "complained", color: "#8e44ad" },
] as const;
export const ACCEPTED_COLOR = "#1f5fbf";

export interface HourCounts {
  /** Start of the hour, epoch ms. */
  hour: number;
  counts: Partial<Record<string, number>>;
}

const W = 720;
const H = 220;
const PAD = { left: 44, right: 8, top: 10, bottom: 26 };

function niceMax(n: number): number {
  if (n <= 5) return 5;
  const step = 10 ** Math.floor(Math.log10(n));
  return Math.ceil(n / step) * step;
}

export function HourlyChart(props: { hours: HourCounts[] }) {
  const hours = props.hours;
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const stacked = hours.map((h) => SERIES.reduce((s, x) => s + (h.counts[x.type] ?? 0), 0));
  const max = niceMax(Math.max(1, ...stacked, ...hours.map((h) => h.counts["accepted"] ?? 0)));
  const slot = plotW / Math.max(1, hours.length);
  const barW = Math.max(2, slot * 0.7);
  const y = (v: number) => PAD.top + plotH - (v / max) * plotH;
  const ticks = [0, max / 2, max];
  const accepted = hours.map((h, i) =>
    `${(PAD.left + slot * i + slot / 2).toFixed(1)},${y(h.counts["accepted"] ?? 0).toFixed(1)}`
  ).join(" ");
  return (
    <svg
      class="chart"
      viewBox={`0 0 ${W} ${H}`}
      role="img"
      aria-label="Messages per hour over the last 24 hours"
    >
      {ticks.map((t) => (
        <g>
          <line x1={PAD.left} x2={W - PAD.right} y1={y(t)} y2={y(t)} stroke="#e3e7ee" />
          <text x={PAD.left - 6} y={y(t) + 4} text-anchor="end" font-size="11" fill="#5b6575">
            {Math.round(t)}
          </text>
        </g>
      ))}
      {hours.map((h, i) => {
        let top = PAD.top + plotH;
        const x = PAD.left + slot * i + (slot - barW) / 2;
        return (
          <g>
            {SERIES.map((s) => {
              const v = h.counts[s.type] ?? 0;
              if (v === 0) return null;
              const hgt = (v / max) * plotH;
              top -= hgt;
              return (
                <rect x={x} y={top} width={barW} height={hgt} fill={s.color}>
                  <title>{`${new Date(h.hour).toISOString().slice(11, 16)} ${s.type}: ${v}`}</title>
                </rect>
              );
            })}
            {i % 3 === 0
              ? (
                <text
                  x={PAD.left + slot * i + slot / 2}
                  y={H - 8}
                  text-anchor="middle"
                  font-size="11"
                  fill="#5b6575"
                >
                  {new Date(h.hour).toISOString().slice(11, 16)}
                </text>
              )
              : null}
          </g>
        );
      })}
      <polyline points={accepted} fill="none" stroke={ACCEPTED_COLOR} stroke-width="2" />
    </svg>
  );
}

export function Legend() {
  return (
    <div class="legend" aria-hidden="true">
      <span>
        <Swatch color={ACCEPTED_COLOR} />accepted (line)
      </span>
      {SERIES.map((s) => (
        <span>
          <Swatch color={s.color} />
          {s.type}
        </span>
      ))}
    </div>
  );
}

function Swatch(props: { color: string }) {
  return (
    <svg width="12" height="12" class="swatch">
      <rect width="12" height="12" rx="2" fill={props.color} />
    </svg>
  );
}

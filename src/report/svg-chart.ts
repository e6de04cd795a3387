/**
 * Minimal dependency-free SVG charts for the model and backtest reports: line charts (curves, time series)
 * and horizontal bar charts. Output is a standalone SVG string.
 */

export interface Series {
  name: string;
  points: { x: number; y: number }[];
  /** dashed line, e.g. for a diagonal reference */
  dashed?: boolean;
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  width?: number;
  height?: number;
  /** fixed axis ranges; default: the data's extent */
  xRange?: [number, number];
  yRange?: [number, number];
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#7f7f7f'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function tickLabel(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e9) return `${(v / 1e9).toFixed(1)}B`;
  if (a >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (a >= 1e4) return `${(v / 1e3).toFixed(0)}k`;
  if (a >= 100) return v.toFixed(0);
  return Number(v.toPrecision(3)).toString();
}

function extent(values: number[], fallback: [number, number]): [number, number] {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0) return fallback;
  let lo = Math.min(...finite);
  let hi = Math.max(...finite);
  if (lo === hi) {
    lo -= 1;
    hi += 1;
  }
  return [lo, hi];
}

export function lineChart(series: Series[], o: LineChartOptions): string {
  const W = o.width ?? 560;
  const H = o.height ?? 360;
  const m = { l: 64, r: 16, t: 36, b: 48 };
  const [x0, x1] =
    o.xRange ??
    extent(
      series.flatMap((s) => s.points.map((p) => p.x)),
      [0, 1],
    );
  const [y0, y1] =
    o.yRange ??
    extent(
      series.flatMap((s) => s.points.map((p) => p.y)),
      [0, 1],
    );
  const sx = (x: number) => m.l + ((x - x0) / (x1 - x0)) * (W - m.l - m.r);
  const sy = (y: number) => H - m.b - ((y - y0) / (y1 - y0)) * (H - m.t - m.b);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    `<title>${esc(o.title)}</title>`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(o.title)}</text>`,
  ];
  for (let i = 0; i <= 4; i++) {
    const xv = x0 + ((x1 - x0) * i) / 4;
    const yv = y0 + ((y1 - y0) * i) / 4;
    parts.push(
      `<line x1="${sx(xv)}" y1="${m.t}" x2="${sx(xv)}" y2="${H - m.b}" stroke="#eee"/>`,
      `<line x1="${m.l}" y1="${sy(yv)}" x2="${W - m.r}" y2="${sy(yv)}" stroke="#eee"/>`,
      `<text x="${sx(xv)}" y="${H - m.b + 14}" text-anchor="middle">${tickLabel(xv)}</text>`,
      `<text x="${m.l - 6}" y="${sy(yv) + 4}" text-anchor="end">${tickLabel(yv)}</text>`,
    );
  }
  parts.push(
    `<rect x="${m.l}" y="${m.t}" width="${W - m.l - m.r}" height="${H - m.t - m.b}" fill="none" stroke="#444"/>`,
    `<text x="${(m.l + W - m.r) / 2}" y="${H - 10}" text-anchor="middle">${esc(o.xLabel)}</text>`,
    `<text transform="translate(14 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`,
  );
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const d = s.points
      .filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y))
      .map((p, k) => `${k === 0 ? 'M' : 'L'}${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`)
      .join('');
    parts.push(
      `<path d="${d}" fill="none" stroke="${color}" stroke-width="1.6"${s.dashed ? ' stroke-dasharray="4 3"' : ''}/>`,
    );
    parts.push(
      `<rect x="${m.l + 10}" y="${m.t + 8 + i * 15}" width="10" height="3" fill="${color}"/>`,
      `<text x="${m.l + 24}" y="${m.t + 12 + i * 15}">${esc(s.name)}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('\n');
}

export function barChart(
  bars: { label: string; value: number }[],
  o: { title: string; xLabel: string; width?: number },
): string {
  const W = o.width ?? 560;
  const rowH = 20;
  const m = { l: 190, r: 60, t: 36, b: 36 };
  const H = m.t + m.b + rowH * bars.length;
  const max = Math.max(1e-12, ...bars.map((b) => Math.abs(b.value)));
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    `<title>${esc(o.title)}</title>`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(o.title)}</text>`,
  ];
  bars.forEach((b, i) => {
    const y = m.t + i * rowH;
    const w = (Math.abs(b.value) / max) * (W - m.l - m.r);
    parts.push(
      `<text x="${m.l - 6}" y="${y + 14}" text-anchor="end">${esc(b.label)}</text>`,
      `<rect x="${m.l}" y="${y + 3}" width="${w.toFixed(1)}" height="${rowH - 6}" fill="${b.value >= 0 ? COLORS[0] : COLORS[1]}"/>`,
      `<text x="${m.l + w + 4}" y="${y + 14}">${tickLabel(b.value)}</text>`,
    );
  });
  parts.push(
    `<text x="${(m.l + W - m.r) / 2}" y="${H - 10}" text-anchor="middle">${esc(o.xLabel)}</text>`,
    '</svg>',
  );
  return parts.join('\n');
}

'use strict';
// A hand-written SVG grouped bar chart: one panel per operation, a group of bars (one per
// peer) per concurrency, each panel with its own linear ops/s scale; redis-benchmark's
// GET/SET rate, where known, as a dashed line over its group.

const COLORS = {
  'ioredis-zod': '#9aa5b1',
  'ioredis-fast': '#5b8def',
  glide: '#f2a541',
  'glide-zod': '#c2571a',
  ours: '#2e9e5b',
};

function esc(s) {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A round axis maximum and tick step above `max`. */
function niceScale(max) {
  if (!(max > 0)) return { top: 1, step: 0.25 };
  const raw = max / 4;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw);
  return { top: step * Math.ceil(max / step), step };
}

function short(n) {
  if (n >= 1e6) return `${+(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${+(n / 1e3).toFixed(1)}k`;
  return `${Math.round(n)}`;
}

function renderSvg(report, { opLabel, peerLabel }) {
  const { ops, concurrency, peers } = report.settings;
  const panelW = 470;
  const panelH = 300;
  const cols = 2;
  const rows = Math.ceil(ops.length / cols);
  const margin = { top: 70, left: 20 };
  const plot = { left: 58, right: 14, top: 34, bottom: 40 };
  const width = margin.left * 2 + cols * panelW;
  const height = margin.top + rows * panelH + 20;
  const out = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
  );
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(
    `<text x="${margin.left}" y="24" font-size="16" font-weight="bold">ops/s by operation and concurrency (higher is better)</text>`,
  );
  const e = report.environment;
  out.push(
    `<text x="${margin.left}" y="42" fill="#555">${esc(`${e.cpus} cores shared by redis-server ${e.redisVersion} (TLS) and Node ${e.node}; ~${report.workload.averageBytes} B documents; load ${e.loadBefore[0].toFixed(2)}; ${report.date.slice(0, 10)}`)}</text>`,
  );
  // Legend.
  let lx = margin.left;
  const hasFloor = Object.values(report.redisBenchmark || {}).some((rb) => rb && (rb.get || rb.set));
  const legend = [
    ...peers.map((p) => [peerLabel[p], COLORS[p], false]),
    ...(hasFloor ? [['redis-benchmark GET/SET', '#d62728', true]] : []),
  ];
  for (const [label, color, dashed] of legend) {
    if (dashed)
      out.push(
        `<line x1="${lx}" y1="56" x2="${lx + 14}" y2="56" stroke="${color}" stroke-width="2" stroke-dasharray="4 2"/>`,
      );
    else out.push(`<rect x="${lx}" y="50" width="14" height="12" fill="${color}"/>`);
    out.push(`<text x="${lx + 19}" y="60">${esc(label)}</text>`);
    lx += 30 + label.length * 7;
  }

  ops.forEach((op, index) => {
    const x0 = margin.left + (index % cols) * panelW;
    const y0 = margin.top + Math.floor(index / cols) * panelH;
    const innerW = panelW - plot.left - plot.right;
    const innerH = panelH - plot.top - plot.bottom;
    const cells = report.results.filter((r) => r.op === op);
    const floors = concurrency.map((c) => {
      const rb = report.redisBenchmark?.[c];
      return rb?.[op] ? rb[op].opsPerSec : undefined;
    });
    const max = Math.max(...cells.map((r) => r.opsPerSec), ...floors.filter(Boolean), 1);
    const { top, step } = niceScale(max);
    const y = (v) => y0 + plot.top + innerH - (v / top) * innerH;
    out.push(`<g>`);
    out.push(
      `<text x="${x0 + plot.left}" y="${y0 + 20}" font-size="14" font-weight="bold">${esc(opLabel[op] || op)}</text>`,
    );
    for (let v = 0; v <= top + 1e-9; v += step) {
      out.push(
        `<line x1="${x0 + plot.left}" y1="${y(v).toFixed(1)}" x2="${x0 + panelW - plot.right}" y2="${y(v).toFixed(1)}" stroke="#e3e3e3"/>`,
      );
      out.push(
        `<text x="${x0 + plot.left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" fill="#555">${short(v)}</text>`,
      );
    }
    const groupW = innerW / concurrency.length;
    const barW = Math.min(34, (groupW * 0.8) / peers.length);
    concurrency.forEach((c, g) => {
      const gx = x0 + plot.left + g * groupW;
      const startX = gx + (groupW - barW * peers.length) / 2;
      peers.forEach((peer, p) => {
        const r = cells.find((cell) => cell.peer === peer && cell.concurrency === c);
        if (!r) return;
        const bx = startX + p * barW;
        const by = y(r.opsPerSec);
        out.push(
          `<rect x="${bx.toFixed(1)}" y="${by.toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${(y0 + plot.top + innerH - by).toFixed(1)}" fill="${COLORS[peer]}"><title>${esc(`${peerLabel[peer]} ${op} c=${c}: ${Math.round(r.opsPerSec)} ops/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms`)}</title></rect>`,
        );
        out.push(
          `<text x="${(bx + (barW - 2) / 2).toFixed(1)}" y="${(by - 3).toFixed(1)}" text-anchor="middle" font-size="9" fill="#333">${short(r.opsPerSec)}</text>`,
        );
      });
      if (floors[g]) {
        const fy = y(floors[g]).toFixed(1);
        out.push(
          `<line x1="${(gx + 4).toFixed(1)}" y1="${fy}" x2="${(gx + groupW - 4).toFixed(1)}" y2="${fy}" stroke="#d62728" stroke-width="2" stroke-dasharray="4 2"><title>redis-benchmark ${op.toUpperCase()} -c ${c}: ${Math.round(floors[g])}/s</title></line>`,
        );
      }
      out.push(
        `<text x="${(gx + groupW / 2).toFixed(1)}" y="${y0 + plot.top + innerH + 16}" text-anchor="middle">c=${c}</text>`,
      );
    });
    out.push(
      `<line x1="${x0 + plot.left}" y1="${y0 + plot.top + innerH}" x2="${x0 + panelW - plot.right}" y2="${y0 + plot.top + innerH}" stroke="#333"/>`,
    );
    out.push(`</g>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

module.exports = { renderSvg };

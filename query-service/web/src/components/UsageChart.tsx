import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { UsagePoint } from '../api/types';
import { formatBytes } from '../lib/format';

/** Data (bytes, left axis) and SMS (messages, right axis) per bucket, with uPlot. */
/** `range`: the period asked for (from, to), so a few buckets sit where they belong on the axis. */
export function UsageChart({ points, label, range }: { points: UsagePoint[]; label: string; range: [string, string] }) {
  const box = useRef<HTMLDivElement>(null);

  useEffect(() => {
    const element = box.current;
    if (!element) return;
    const data: uPlot.AlignedData = [
      points.map((p) => Date.parse(p.bucket) / 1000),
      points.map((p) => p.data_bytes),
      points.map((p) => p.sms_mo + p.sms_mt),
    ];
    const plot = new uPlot(
      {
        width: element.clientWidth,
        height: 240,
        series: [
          {},
          { label: 'Data', stroke: '#1d4ed8', width: 2, fill: 'rgba(29,78,216,0.08)', value: (_, v) => (v === null ? '—' : formatBytes(v)), scale: 'bytes' },
          { label: 'SMS', stroke: '#b45309', width: 2, value: (_, v) => (v === null ? '—' : String(v)), scale: 'sms' },
        ],
        axes: [
          {},
          { scale: 'bytes', values: (_, ticks) => ticks.map((t) => formatBytes(t)), size: 70 },
          { scale: 'sms', side: 1, grid: { show: false } },
        ],
        scales: { x: { time: true, range: [Date.parse(range[0]) / 1000, Date.parse(range[1]) / 1000] } },
      },
      data,
      element,
    );
    const resize = new ResizeObserver(() => plot.setSize({ width: element.clientWidth, height: 240 }));
    resize.observe(element);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, [points, range[0], range[1]]);

  return <div ref={box} className="chart" role="img" aria-label={label} />;
}

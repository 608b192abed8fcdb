import type { SimView } from '../../api/types';
import { formatAge, formatDateTime } from '../../lib/format';
import { Pair } from './common';

export function Identity({ sim }: { sim: SimView }) {
  return (
    <section className="card" aria-labelledby="identity-title">
      <h2 id="identity-title">Identity</h2>
      <dl className="pairs">
        <Pair term="ICCID" value={sim.iccid} mono />
        <Pair term="IMSI" value={sim.imsi} mono />
        <Pair term="MSISDN" value={sim.msisdn} mono />
        <Pair term="IMEI" value={sim.imei} mono />
        <Pair term="IMEI lock" value={sim.imei_lock ? 'on' : 'off'} />
        <Pair term="Label" value={sim.label} testId="sim-label" />
        <Pair term="Tags" value={sim.tags.join(', ') || null} testId="sim-tags" />
        <Pair term="Registered" value={formatDateTime(sim.registered_at)} />
        {sim.terminated_at && <Pair term="Terminated" value={formatDateTime(sim.terminated_at)} />}
      </dl>
    </section>
  );
}

export function Connectivity({ sim }: { sim: SimView }) {
  return (
    <section className="card" aria-labelledby="connectivity-title">
      <h2 id="connectivity-title">Connectivity</h2>
      <dl className="pairs">
        <Pair term="Network" value={sim.network} />
        <Pair term="Country" value={sim.country} />
        <Pair term="Radio access" value={sim.rat} />
        <Pair term="IP address" value={sim.ip_address} mono />
        <Pair term="Last seen" value={sim.last_seen_at ? `${formatAge(sim.last_seen_at)} (${formatDateTime(sim.last_seen_at)})` : null} />
      </dl>
    </section>
  );
}

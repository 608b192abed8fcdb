import { Link } from 'wouter';
import { roleAtLeast } from '../api/useSession';
import { ErrorNotice } from '../components/ErrorNotice';
import { ConnectivityHistory } from './sim/ConnectivityHistory';
import { Controls } from './sim/Controls';
import { EditSim } from './sim/EditSim';
import { Connectivity, Identity } from './sim/Identity';
import { useHistory, useSim } from './sim/queries';
import { Quotas } from './sim/Quotas';
import { Requests } from './sim/Requests';
import { SmsThread } from './sim/SmsThread';
import { Status } from './sim/Status';
import { Timeline } from './sim/Timeline';
import { Usage } from './sim/Usage';
import './sim/sim.css';

/** One SIM: what it is and where it stands, its quotas, usage, messages and history. */
export function SimDetail({ iccid }: { iccid: string }) {
  const sim = useSim(iccid);
  const history = useHistory(iccid);
  const live = sim.data ? sim.data.status !== 'terminated' : false;

  return (
    <>
      <p>
        <Link href="/sims">← SIMs</Link>
      </p>
      <h1>
        SIM <span className="mono">{iccid}</span>
      </h1>
      {sim.error && <ErrorNotice error={sim.error} what="load this SIM" />}
      {sim.isPending && <p className="progress">Loading…</p>}
      {sim.data && (
        <>
          <div className="cards">
            <Status sim={sim.data} />
            <Identity sim={sim.data} />
            <Connectivity sim={sim.data} />
            <Requests history={history.data} />
            <Controls sim={sim.data} />
          </div>
          {live && roleAtLeast('operator') && (
            <div className="sim-section">
              <EditSim sim={sim.data} />
            </div>
          )}
          <Quotas iccid={iccid} live={live} />
          <div className="two-col">
            <Usage iccid={iccid} />
            <SmsThread iccid={iccid} live={live} />
          </div>
          <ConnectivityHistory iccid={iccid} />
          <Timeline iccid={iccid} history={history.data} error={history.error} />
        </>
      )}
    </>
  );
}

import { useQueryClient } from '@tanstack/react-query';
import { useEffect, useRef } from 'react';
import { Link, Route, Switch, useLocation } from 'wouter';
import { session } from './api/client';
import { Role, roleAtLeast, useSessionState } from './api/useSession';
import { LoginDialog } from './components/LoginDialog';
import { Admin } from './screens/Admin';
import { BulkJobDetail, BulkJobs } from './screens/BulkJobs';
import { FleetOverview } from './screens/FleetOverview';
import { Import } from './screens/Import';
import { Limits } from './screens/Limits';
import { SimDetail } from './screens/SimDetail';
import { SimTable } from './screens/SimTable';
import { Sync } from './screens/Sync';

const NAV: { href: string; label: string; role?: Role }[] = [
  { href: '/', label: 'Fleet' },
  { href: '/sims', label: 'SIMs' },
  { href: '/sync', label: 'Sync' },
  { href: '/jobs', label: 'Bulk jobs', role: 'operator' },
  { href: '/import', label: 'Import', role: 'operator' },
  { href: '/limits', label: 'Limits', role: 'operator' },
  { href: '/admin', label: 'Admin', role: 'admin' },
];

export function App() {
  const state = useSessionState();
  const queryClient = useQueryClient();
  const [location] = useLocation();
  const main = useRef<HTMLElement>(null);

  // Ask for a token at start: the refresh cookie (if any) signs the user in without a form.
  useEffect(() => {
    session.accessToken().catch(() => undefined);
  }, []);

  // A logout (here or in another tab) leaves nothing of the old session on screen for the
  // next user; an expired session keeps everything, the user logs in again and goes on.
  useEffect(() => session.onLogout(() => queryClient.clear()), [queryClient]);

  // Move focus to the new screen so keyboard and screen-reader users land on it.
  useEffect(() => {
    main.current?.focus({ preventScroll: true });
  }, [location]);

  const logout = () => session.logout().catch(() => undefined);

  const user = state === 'signed-in' ? session.claims() : null;
  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <span className="brand">SIM platform</span>
        <nav aria-label="Main">
          <ul>
            {NAV.filter((item) => !item.role || (user && roleAtLeast(item.role))).map((item) => {
              const current = item.href === '/' ? location === '/' : location.startsWith(item.href);
              return (
                <li key={item.href}>
                  <Link href={item.href} aria-current={current ? 'page' : undefined}>
                    {item.label}
                  </Link>
                </li>
              );
            })}
          </ul>
        </nav>
        {user && (
          <div className="user">
            <span>
              {user.username} <span className="muted">({user.role})</span>
            </span>
            <button type="button" onClick={logout}>
              Log out
            </button>
          </div>
        )}
      </header>
      <main id="main" ref={main} tabIndex={-1} aria-busy={state === 'unknown'}>
        <Switch>
          <Route path="/" component={FleetOverview} />
          <Route path="/sims" component={SimTable} />
          <Route path="/sims/:iccid">{(params) => <SimDetail iccid={params.iccid} />}</Route>
          <Route path="/sync" component={Sync} />
          <Route path="/jobs" component={BulkJobs} />
          <Route path="/jobs/:id">{(params) => <BulkJobDetail id={params.id} />}</Route>
          <Route path="/import" component={Import} />
          <Route path="/limits" component={Limits} />
          <Route path="/admin" component={Admin} />
          <Route>
            <h1>Not found</h1>
            <p>
              There is no such page. <Link href="/">Go to the fleet overview</Link>.
            </p>
          </Route>
        </Switch>
      </main>
      {state === 'signed-out' && <LoginDialog />}
    </>
  );
}

// The SIM's reads. Every key starts with ['sim', iccid], so a command refreshes them all; each
// polls while something it shows waits for the provider (a change, a top-up, an SMS).
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { query, unwrap } from '../../api/client';
import type { ConnectivityHistoryPage, StoredEvent } from '../../api/types';
import { requestsOf } from '../../lib/requests';
import { controlPending } from './Controls';

const POLL_MS = 2_000;
/** A request still pending after this long is not polled for any more (the page may be left open). */
const POLL_FOR_MS = 10 * 60_000;

const recent = (iso: string | null | undefined) => !!iso && Date.now() - Date.parse(iso) < POLL_FOR_MS;

export function useSim(iccid: string) {
  return useQuery({
    queryKey: ['sim', iccid],
    queryFn: () => unwrap(query.GET('/api/v1/sims/{iccid}', { params: { path: { iccid } } })),
    refetchInterval: (q) =>
      (q.state.data?.pending_change || (q.state.data && controlPending(q.state.data))) && recent(q.state.data?.updated_at) ? POLL_MS : false,
  });
}

export function useQuotas(iccid: string) {
  return useQuery({
    queryKey: ['sim', iccid, 'quotas'],
    queryFn: () => unwrap(query.GET('/api/v1/sims/{iccid}/quotas', { params: { path: { iccid } } })),
    refetchInterval: (q) => (q.state.data?.some((row) => row.pending_topup_id && recent(row.updated_at)) ? POLL_MS : false),
  });
}

export const SMS_SHOWN = 50;

export function useSms(iccid: string) {
  return useQuery({
    queryKey: ['sim', iccid, 'sms'],
    queryFn: () => unwrap(query.GET('/api/v1/sims/{iccid}/sms', { params: { path: { iccid }, query: { page_size: SMS_SHOWN } } })),
    refetchInterval: (q) =>
      q.state.data?.some((m) => (m.status === 'requested' || m.status === 'submitted') && recent(m.updated_at)) ? POLL_MS : false,
  });
}

export interface History {
  events: StoredEvent[];
  nextAfter: number;
}

const PAGE = 1000;
/** The most events read in one go; a longer history is read on the next refresh. */
const PAGES_PER_READ = 20;

/**
 * The SIM's whole history, oldest first. Stored events never change, so a refresh reads only
 * what came after the last one it has.
 */
export function useHistory(iccid: string) {
  const queryClient = useQueryClient();
  const key = ['sim', iccid, 'events'];
  return useQuery({
    queryKey: key,
    queryFn: async (): Promise<History> => {
      const known = queryClient.getQueryData<History>(key);
      const events = known ? [...known.events] : [];
      let after = known?.nextAfter ?? 0;
      for (let i = 0; i < PAGES_PER_READ; i++) {
        const page = await unwrap(
          query.GET('/api/v1/sims/{iccid}/events', { params: { path: { iccid }, query: { after_position: after, limit: PAGE } } }),
        );
        events.push(...page.events);
        after = page.next_after;
        if (page.events.length < PAGE) break;
      }
      return { events, nextAfter: after };
    },
    refetchInterval: (q) => (q.state.data && requestsOf(q.state.data.events).some((r) => r.outcome === 'pending' && recent(r.requestedAt)) ? POLL_MS : false),
  });
}

const CONNECTIVITY_PAGE = 1000;
/** The most changes read for the screen; an older remainder is for the API (`after`). */
const CONNECTIVITY_PAGES = 5;

export interface ConnectivityChanges {
  changes: ConnectivityHistoryPage['changes'];
  /** More changes exist than were read: the screen shows the most recent of those it read. */
  truncated: boolean;
}

/**
 * The SIM's connectivity changes, oldest first. A long history is read from its newest end:
 * the first page tells nothing of the length, so pages are read forward and only the last
 * `CONNECTIVITY_PAGES` of them are kept.
 */
export function useConnectivityHistory(iccid: string) {
  return useQuery({
    queryKey: ['sim', iccid, 'connectivity'],
    queryFn: async (): Promise<ConnectivityChanges> => {
      const pages: ConnectivityHistoryPage['changes'][] = [];
      let after = 0;
      let truncated = false;
      for (;;) {
        const page = await unwrap(
          query.GET('/api/v1/sims/{iccid}/connectivity', { params: { path: { iccid }, query: { after, limit: CONNECTIVITY_PAGE } } }),
        );
        pages.push(page.changes);
        if (pages.length > CONNECTIVITY_PAGES) {
          pages.shift();
          truncated = true;
        }
        if (page.changes.length < CONNECTIVITY_PAGE) break;
        after = page.next_after;
      }
      return { changes: pages.flat(), truncated };
    },
  });
}

// What the SIM detail's parts share: the label/value pair, commands that wait for the read
// model, and the If-Match header of the SIM's version.
import { QueryClient, useMutation, useQueryClient } from '@tanstack/react-query';
import { afterCommand, ApiError } from '../../api/client';
import type { CommandAnswer, SimView } from '../../api/types';

export function Pair({ term, value, mono, testId }: { term: string; value: string | null | undefined; mono?: boolean; testId?: string }) {
  return (
    <div>
      <dt>{term}</dt>
      <dd className={mono ? 'mono' : undefined} data-testid={testId}>
        {value ?? '—'}
      </dd>
    </div>
  );
}

/** `If-Match: "<version>"`: the command applies only to the SIM as the user saw it. */
export function ifMatch(version: number) {
  return { headers: { 'If-Match': `"${version}"` } };
}

/**
 * A command on this SIM. It stays pending until the read models show it: its answer's position
 * goes with the next reads (afterCommand), and the SIM's queries are read again before it ends.
 */
export function useSimCommand<V>(iccid: string, send: (variables: V) => Promise<CommandAnswer>) {
  const queryClient = useQueryClient();
  return useMutation({
    mutationFn: send,
    onSuccess: async (answer) => {
      afterCommand(answer);
      await queryClient.invalidateQueries({ queryKey: ['sim', iccid] });
    },
    onError: (error) => {
      // Refused because the SIM moved on: show what it is now.
      if (error instanceof ApiError && (error.status === 409 || error.status === 412)) {
        void catchUp(queryClient, iccid, refusedAtVersion(error));
      }
    },
  });
}

/** The version a refusal for a stale If-Match (412 `VERSION_MISMATCH`) says the SIM is at. */
export function refusedAtVersion(error: unknown): number | null {
  if (!(error instanceof ApiError) || error.status !== 412) return null;
  const version = (error.details as { current_version?: unknown } | undefined)?.current_version;
  return typeof version === 'number' ? version : null;
}

/**
 * Reads the SIM again until the read model shows `version` (it follows the record a moment
 * behind, and the change that won came from elsewhere, without a position to wait for); 10 s
 * at most.
 */
async function catchUp(queryClient: QueryClient, iccid: string, version: number | null) {
  await queryClient.invalidateQueries({ queryKey: ['sim', iccid] });
  for (let tries = 0; version !== null && tries < 40; tries++) {
    const sim = queryClient.getQueryData<SimView>(['sim', iccid]);
    if (sim && sim.version >= version) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
    await queryClient.refetchQueries({ queryKey: ['sim', iccid], exact: true });
  }
}

/** Words for a refused command whose cause the user can act on (someone else changed the SIM). */
export function conflictHint(error: unknown): string | null {
  if (!(error instanceof ApiError)) return null;
  if (error.status === 412) return 'Someone changed this SIM after you opened it. The page now shows its latest state: check it and try again.';
  if (error.status === 409) return 'The SIM’s state refuses this now (a change may be pending, or it was changed meanwhile). The page shows its latest state.';
  return null;
}

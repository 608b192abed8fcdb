// What the SIM detail's parts share: the label/value pair, commands that wait for the read
// model, and the If-Match header of the SIM's version.
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { afterCommand, ApiError } from '../../api/client';
import type { CommandAnswer } from '../../api/types';

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
        void queryClient.invalidateQueries({ queryKey: ['sim', iccid] });
      }
    },
  });
}

/** Words for a refused command whose cause the user can act on (someone else changed the SIM). */
export function conflictHint(error: unknown): string | null {
  if (!(error instanceof ApiError)) return null;
  if (error.status === 412) return 'Someone changed this SIM after you opened it. The page now shows its latest state: check it and try again.';
  if (error.status === 409) return 'The SIM’s state refuses this now (a change may be pending, or it was changed meanwhile). The page shows its latest state.';
  return null;
}

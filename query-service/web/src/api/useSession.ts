import { useSyncExternalStore } from 'react';
import { session } from './client';

export function useSessionState() {
  return useSyncExternalStore(
    (listener) => session.subscribe(listener),
    () => session.getState(),
  );
}

export type Role = 'viewer' | 'operator' | 'admin';
const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

/** Whether the signed-in user's role is at least `role` (hides what the API would refuse). */
export function roleAtLeast(role: Role): boolean {
  const mine = session.claims()?.role;
  return mine !== undefined && RANK[mine] >= RANK[role];
}

import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { unwrap } from './client';

/**
 * One numbered page of a job list (`key` names it in the query cache, with the page) and the
 * total the API counts over every page (`X-Total-Count`; the page's length without it). The
 * previous page stays shown while the next loads, and the page is read again every 2 s while a
 * job on it is `running`.
 */
export function useJobPage<T>(
  key: string,
  page: number,
  fetchPage: () => Promise<{ data?: T[]; error?: unknown; response: Response }>,
  running: (job: T) => boolean,
) {
  return useQuery({
    queryKey: [key, page],
    queryFn: async () => {
      const result = await fetchPage();
      const list = await unwrap(Promise.resolve(result));
      return { list, total: Number(result.response.headers.get('X-Total-Count') ?? list.length) };
    },
    placeholderData: keepPreviousData,
    refetchInterval: (q) => (q.state.data?.list.some(running) ? 2000 : false),
  });
}

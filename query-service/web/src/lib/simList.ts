// The SIM table's state (search, filters, sort, page size, columns) and how it maps to
// `GET /sims` parameters and to the page's address, so a search can be reloaded or shared.

export const STATUSES = ['inactive', 'active', 'suspended', 'terminated'] as const;
export type Status = (typeof STATUSES)[number];

/** Quota states as the API names them (the worse of data and SMS): under 80 % used, at 80 % or
 * more with something left, nothing left. */
export const QUOTA_STATES = { ok: 'under 80 %', warning: '80 % or more', exhausted: 'used up' } as const;
export type QuotaState = keyof typeof QUOTA_STATES;

export const SEARCH_FIELDS = {
  iccid: 'ICCID prefix',
  imsi: 'IMSI prefix',
  msisdn: 'MSISDN prefix',
  label: 'Label contains',
} as const;
export type SearchField = keyof typeof SEARCH_FIELDS;

export const SORT_KEYS = ['iccid', 'imsi', 'msisdn', 'label', 'status', 'registered_at', 'updated_at', 'last_seen_at'] as const;
export type SortKey = (typeof SORT_KEYS)[number];

export const PAGE_SIZES = [25, 50, 100, 200] as const;

export interface ListState {
  field: SearchField;
  text: string;
  statuses: Status[];
  quotaStates: QuotaState[];
  tags: string;
  sort: SortKey;
  descending: boolean;
  pageSize: number;
}

export const DEFAULT_STATE: ListState = {
  field: 'iccid',
  text: '',
  statuses: [],
  quotaStates: [],
  tags: '',
  sort: 'iccid',
  descending: false,
  pageSize: 50,
};

export type ListParams = Partial<Record<'status' | 'quota_state' | 'tag' | 'label' | 'iccid' | 'imsi' | 'msisdn' | 'sort', string>> & {
  page_size: number;
  after: string;
};

/** Why the search text cannot be sent (the API would refuse it), or null. */
export function searchProblem(state: Pick<ListState, 'field' | 'text'>): string | null {
  const text = state.text.trim();
  if (!text) return null;
  if (state.field === 'label') return text.length > 100 ? 'A label search has at most 100 characters.' : null;
  const max = state.field === 'iccid' ? 20 : 15;
  return /^[0-9]+$/.test(text) && text.length <= max ? null : `Type 1 to ${max} digits.`;
}

/** The list's query parameters (keyset paging: `after` is the cursor, empty on the first page). */
export function listParams(state: ListState, cursor: string): ListParams {
  const params: ListParams = { page_size: state.pageSize, after: cursor };
  const text = state.text.trim();
  if (text && !searchProblem(state)) params[state.field] = text;
  if (state.statuses.length) params.status = state.statuses.join(',');
  if (state.quotaStates.length) params.quota_state = state.quotaStates.join(',');
  const tags = splitTags(state.tags);
  if (tags.length) params.tag = tags.join(',');
  if (state.sort !== 'iccid' || state.descending) params.sort = `${state.descending ? '-' : ''}${state.sort}`;
  return params;
}

export function splitTags(raw: string): string[] {
  return raw
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
}

/** The state written into the page's address (only what differs from the defaults). */
export function toSearch(state: ListState): string {
  const out = new URLSearchParams();
  if (state.text.trim()) {
    out.set('field', state.field);
    out.set('q', state.text.trim());
  }
  if (state.statuses.length) out.set('status', state.statuses.join(','));
  if (state.quotaStates.length) out.set('quota', state.quotaStates.join(','));
  if (state.tags.trim()) out.set('tags', state.tags.trim());
  if (state.sort !== 'iccid' || state.descending) out.set('sort', `${state.descending ? '-' : ''}${state.sort}`);
  if (state.pageSize !== DEFAULT_STATE.pageSize) out.set('size', String(state.pageSize));
  const text = out.toString();
  return text ? `?${text}` : '';
}

/** The state read back from an address; anything unknown falls back to the default. */
export function fromSearch(search: string): ListState {
  const input = new URLSearchParams(search);
  const field = input.get('field');
  const sort = input.get('sort') ?? '';
  const sortKey = sort.replace(/^-/, '');
  const size = Number(input.get('size'));
  return {
    field: field && field in SEARCH_FIELDS ? (field as SearchField) : DEFAULT_STATE.field,
    text: input.get('q') ?? '',
    statuses: (input.get('status') ?? '').split(',').filter((s): s is Status => (STATUSES as readonly string[]).includes(s)),
    quotaStates: (input.get('quota') ?? '').split(',').filter((q): q is QuotaState => q in QUOTA_STATES),
    tags: input.get('tags') ?? '',
    sort: (SORT_KEYS as readonly string[]).includes(sortKey) ? (sortKey as SortKey) : DEFAULT_STATE.sort,
    descending: sort.startsWith('-') && (SORT_KEYS as readonly string[]).includes(sortKey),
    pageSize: (PAGE_SIZES as readonly number[]).includes(size) ? size : DEFAULT_STATE.pageSize,
  };
}

// Column choice, kept in localStorage.
export const COLUMNS = {
  iccid: 'ICCID',
  imsi: 'IMSI',
  msisdn: 'MSISDN',
  label: 'Label',
  status: 'Status',
  tags: 'Tags',
  data: 'Data left',
  sms: 'SMS left',
  network: 'Network',
  last_seen_at: 'Last seen',
  registered_at: 'Registered',
} as const;
export type Column = keyof typeof COLUMNS;
export const DEFAULT_COLUMNS: Column[] = ['iccid', 'imsi', 'msisdn', 'label', 'status', 'data', 'last_seen_at'];
const COLUMNS_KEY = 'simp.sim-table.columns';

export function loadColumns(storage: Pick<Storage, 'getItem'>): Column[] {
  try {
    const saved: unknown = JSON.parse(storage.getItem(COLUMNS_KEY) ?? 'null');
    if (Array.isArray(saved)) {
      const known = saved.filter((c): c is Column => typeof c === 'string' && c in COLUMNS);
      if (known.includes('iccid')) return known;
    }
  } catch {
    // A damaged entry: the defaults.
  }
  return DEFAULT_COLUMNS;
}

/** Saves the choice; the ICCID column (the row's link) always stays. */
export function saveColumns(storage: Pick<Storage, 'setItem'>, columns: Column[]): Column[] {
  const ordered = (Object.keys(COLUMNS) as Column[]).filter((c) => c === 'iccid' || columns.includes(c));
  storage.setItem(COLUMNS_KEY, JSON.stringify(ordered));
  return ordered;
}

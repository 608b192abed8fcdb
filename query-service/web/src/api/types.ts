// Names for the generated schemas the screens use.
import type { components as Command } from './command';
import type { components as Query } from './query';

export type SimView = Query['schemas']['SimView'];
export type FleetSummary = Query['schemas']['FleetSummary'];
export type FleetUsage = Query['schemas']['FleetUsage'];
export type UsagePoint = Query['schemas']['UsagePoint'];
export type QuotaRow = Query['schemas']['QuotaRow'];
export type Granularity = Query['schemas']['Granularity'];
export type CommandAnswer = Command['schemas']['CommandAnswer'];
export type QuotaTotals = Query['schemas']['QuotaTotals'];
export type StoredEvent = Query['schemas']['StoredEvent'];
export type SmsRow = Query['schemas']['SmsRow'];
export type FleetSummaryAsOf = Query['schemas']['FleetSummaryAsOf'];
export type ConnectivityChange = Query['schemas']['ConnectivityChange'];
export type ConnectivityHistoryPage = Query['schemas']['ConnectivityHistory'];
export type LimitsView = Command['schemas']['LimitsView'];
export type LimitOption = Command['schemas']['LimitOption'];

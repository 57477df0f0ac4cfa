-- Minute bars say when their liquidation totals come from a stream the venue samples (pipeline/bars.ts):
-- Binance forceOrder and OKX liquidation-orders push at most one liquidation per symbol per second, so a
-- bar's long and short liquidation USD and count from them are lower bounds. TRUE when any liquidation
-- the bar holds came from such a stream (a merge ORs it). It says nothing of the trades: `complete`
-- stays the trades' (a sampled stream is how the venue is, not a loss of ours).
ALTER TABLE trade_bars ADD COLUMN IF NOT EXISTS liquidations_sampled BOOLEAN NOT NULL DEFAULT FALSE;
-- Trades and liquidations of the minute that could not be valued (no USD price yet): left out of the
-- figures, so the bar is partial (observed_whole false, partial_reason saying how many); a merge adds them.
ALTER TABLE trade_bars ADD COLUMN IF NOT EXISTS unvalued_count BIGINT NOT NULL DEFAULT 0;
-- (`contributions` entries are now `{run}|{earliest ms}|{latest ms}|{records}|{first id}|{last id}`, see
-- storage/inserts.ts upsertTradeBars: no change to the column.)

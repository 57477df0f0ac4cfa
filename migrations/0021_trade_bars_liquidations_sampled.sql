-- Minute bars say when their liquidation totals come from a stream the venue samples (pipeline/bars.ts):
-- Binance forceOrder and OKX liquidation-orders push at most one liquidation per symbol per second, so a
-- bar's long and short liquidation USD and count from them are lower bounds. TRUE when any liquidation
-- the bar holds came from such a stream (a merge ORs it). It says nothing of the trades: `complete`
-- stays the trades' (a sampled stream is how the venue is, not a loss of ours).
ALTER TABLE trade_bars ADD COLUMN IF NOT EXISTS liquidations_sampled BOOLEAN NOT NULL DEFAULT FALSE;

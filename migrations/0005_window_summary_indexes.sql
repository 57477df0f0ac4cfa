-- Every query endpoint summarises all rows of its window (count, sums, distinct
-- exchanges and symbols), not just the page. These covering indexes carry the
-- columns those summaries and the symbol filter read, so a window is an
-- index-only scan instead of one heap visit per row. The original indexes stay.

CREATE INDEX IF NOT EXISTS idx_large_trades_timestamp_summary
    ON large_trades (timestamp DESC) INCLUDE (exchange, symbol, side, value_usd, is_liquidation);
CREATE INDEX IF NOT EXISTS idx_funding_rates_timestamp_summary
    ON funding_rates (timestamp DESC) INCLUDE (exchange, symbol, rate);
CREATE INDEX IF NOT EXISTS idx_open_interest_timestamp_summary
    ON open_interest (timestamp DESC) INCLUDE (exchange, symbol, open_interest_usd);

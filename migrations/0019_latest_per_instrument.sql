-- The cross-venue views (funding comparison, open-interest aggregate, term
-- structure) read each instrument's latest funding and open-interest reading.
-- The same symbol lives on several venues (BTCUSDT on Binance and Bybit), so
-- (symbol, timestamp DESC) would walk one venue's rows to reach a quiet
-- other's. In this order the first entry past an instrument is the next
-- instrument's newest reading: one probe per instrument, as 0010 does for the
-- books.
CREATE INDEX IF NOT EXISTS idx_funding_rates_latest ON funding_rates (exchange, symbol, timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_open_interest_latest ON open_interest (exchange, symbol, timestamp DESC);

-- Minute bars from every trade (pipeline/bars.ts): one row per venue, symbol and minute, written once the
-- minute has closed, never per trade. Trades that arrive after their minute was written (late, or repaired
-- over REST for a gap) come as a correction that is MERGED into the row: volumes and counts added, high the
-- greatest, low the least, open and close those of the earliest and latest trade time.
--
-- `contributions` holds the id of every contribution merged (its first and last record and how many): a
-- merge whose contributions are already there changes nothing, so a batch the writer retries after a lost
-- commit acknowledgement, or a replay of the same frames, never adds a contribution twice.
--
-- `observed_whole` is the write-time half of `complete`: the processor watched the stream from before the
-- minute began until after it ended (false for the first partial minute after a start or a reconnect, and
-- the last one before a stop, `partial_reason` saying which). The other half, no open or unrepaired trades
-- gap over the minute, is decided when read, from data_gaps, because a gap's status changes afterwards.
CREATE TABLE IF NOT EXISTS trade_bars (
    id VARCHAR(255) PRIMARY KEY,                 -- {exchange}_{symbol}_{minute start epoch ms}
    exchange VARCHAR(50) NOT NULL,
    symbol VARCHAR(50) NOT NULL,
    base VARCHAR(20) NOT NULL,                   -- the instrument's base asset (the aggregate's series)
    instrument_kind VARCHAR(10) NOT NULL,        -- spot | perpetual | future | option (options stay out of the aggregate)
    minute TIMESTAMP NOT NULL,                   -- start of the minute, UTC
    open NUMERIC,                                -- NULL when the minute had liquidations but no trade
    high NUMERIC,
    low NUMERIC,
    close NUMERIC,
    open_time TIMESTAMP,                         -- exchange time of the trade that gave open / close
    close_time TIMESTAMP,
    volume_base NUMERIC NOT NULL,                -- coins (size_base's rule)
    volume_usd NUMERIC NOT NULL,
    buy_volume_usd NUMERIC NOT NULL,             -- taker buys
    sell_volume_usd NUMERIC NOT NULL,            -- taker sells
    trade_count BIGINT NOT NULL,
    long_liquidations_usd NUMERIC NOT NULL,      -- long positions liquidated (sell orders)
    short_liquidations_usd NUMERIC NOT NULL,     -- short positions liquidated (buy orders)
    liquidation_count BIGINT NOT NULL,
    observed_whole BOOLEAN NOT NULL,
    partial_reason TEXT,
    contributions TEXT[] NOT NULL,
    -- When the row was last written, inserted or merged: the stream's replay position (api/stream.ts), so a
    -- client resuming from the database is sent the merged bar.
    created_at TIMESTAMP DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_trade_bars_symbol_minute ON trade_bars (symbol, minute DESC);
CREATE INDEX IF NOT EXISTS idx_trade_bars_base_minute ON trade_bars (base, minute DESC);
CREATE INDEX IF NOT EXISTS idx_trade_bars_minute ON trade_bars (minute DESC);
CREATE INDEX IF NOT EXISTS idx_trade_bars_created_at ON trade_bars (created_at);

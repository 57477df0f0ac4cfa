-- Sizes in one unit. `large_trades.size` is as the venue counts it: coins
-- (spot, Binance USD-M, Bybit linear, Deribit options), contracts (OKX swaps
-- and futures: ctVal coins or ctVal USD each) or USD (Bybit inverse contracts
-- of 1 USD, Deribit inverse futures' `amount`). `size_base` is the same in the
-- base asset and `size_unit` ('base', 'contracts', 'usd') says what `size`
-- counts; `open_interest_base` is open interest in the base asset.
--
-- Existing rows are filled from what their metadata says, NULL where it says
-- too little:
-- - trades carry contract_type and contract_size: inverse is
--   size x contract_size / price, every other type size x contract_size;
-- - liquidations stored before this carry neither: they take the contract
--   facts of a trade row of the same instrument, when one is stored;
-- - open interest carries contract_size and contract_unit: a unit of 'USD'
--   (inverse) is open_interest x contract_size / mark_price (NULL without a
--   mark price), a coin is open_interest x contract_size.
-- The unit follows domain/valuation.ts (sizeUnitOf): OKX derivatives count
-- contracts whatever they are worth (instruments.ts of the okx venue), other
-- inverse contracts of 1 USD count USD, contracts of one coin count coins.
-- Re-running changes nothing: only rows without a unit / base are touched.
-- The functions below are the same rules in SQL, for this backfill.

ALTER TABLE large_trades ADD COLUMN IF NOT EXISTS size_base NUMERIC;
ALTER TABLE large_trades ADD COLUMN IF NOT EXISTS size_unit TEXT;
ALTER TABLE open_interest ADD COLUMN IF NOT EXISTS open_interest_base NUMERIC;

CREATE OR REPLACE FUNCTION jsonb_positive_number(value JSONB) RETURNS NUMERIC
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN jsonb_typeof(value) = 'number' AND value::text::numeric > 0 THEN value::text::numeric END
$$;

CREATE OR REPLACE FUNCTION large_trade_size_unit(exchange TEXT, contract_type TEXT, contract_size NUMERIC) RETURNS TEXT
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN contract_type IS NULL OR contract_size IS NULL THEN NULL
        WHEN exchange = 'okx' AND contract_type IN ('linear', 'inverse') THEN 'contracts'
        WHEN contract_type = 'inverse' THEN CASE WHEN contract_size = 1 THEN 'usd' ELSE 'contracts' END
        WHEN contract_type IN ('spot', 'option') THEN 'base'
        WHEN contract_type = 'linear' THEN CASE WHEN contract_size = 1 THEN 'base' ELSE 'contracts' END
    END
$$;

CREATE OR REPLACE FUNCTION large_trade_size_base(contract_type TEXT, contract_size NUMERIC, size NUMERIC, price NUMERIC) RETURNS NUMERIC
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN contract_type IS NULL OR contract_size IS NULL THEN NULL
        WHEN contract_type = 'inverse' THEN CASE WHEN price > 0 THEN size * contract_size / price END
        WHEN contract_type IN ('spot', 'option', 'linear') THEN size * contract_size
    END
$$;

-- Rows that say their own contract type and size (every trade row).
UPDATE large_trades
SET size_unit = large_trade_size_unit(exchange, metadata->>'contract_type', jsonb_positive_number(metadata->'contract_size')),
    size_base = large_trade_size_base(metadata->>'contract_type', jsonb_positive_number(metadata->'contract_size'), size, price)
WHERE size_unit IS NULL
    AND large_trade_size_unit(exchange, metadata->>'contract_type', jsonb_positive_number(metadata->'contract_size')) IS NOT NULL;

-- Rows that do not (liquidations stored before this): the latest trade row of the same instrument says them.
UPDATE large_trades AS t
SET size_unit = large_trade_size_unit(t.exchange, spec.contract_type, spec.contract_size),
    size_base = large_trade_size_base(spec.contract_type, spec.contract_size, t.size, t.price)
FROM (
    SELECT DISTINCT ON (exchange, symbol) exchange, symbol, metadata->>'contract_type' AS contract_type,
        jsonb_positive_number(metadata->'contract_size') AS contract_size
    FROM large_trades
    WHERE large_trade_size_unit(exchange, metadata->>'contract_type', jsonb_positive_number(metadata->'contract_size')) IS NOT NULL
    ORDER BY exchange, symbol, timestamp DESC
) AS spec
WHERE t.exchange = spec.exchange AND t.symbol = spec.symbol AND t.size_unit IS NULL
    AND t.metadata->'contract_type' IS NULL;

UPDATE open_interest
SET open_interest_base = CASE
        WHEN metadata->>'contract_unit' = 'USD' THEN
            open_interest * jsonb_positive_number(metadata->'contract_size') / jsonb_positive_number(metadata->'mark_price')
        ELSE open_interest * jsonb_positive_number(metadata->'contract_size')
    END
WHERE open_interest_base IS NULL
    AND jsonb_positive_number(metadata->'contract_size') IS NOT NULL
    AND metadata->>'contract_unit' IS NOT NULL;

-- Bybit open interest stored before the fix counted both sides: the v5 tickers'
-- `openInterest` is "Open interest size (both sides)" (Bybit's field table), so
-- every bybit-derivatives row was twice what every other venue stores. Rows
-- the fixed decoder wrote say how they were obtained in
-- metadata.open_interest_sides ("single" or "halved_from_both_sides"); a row
-- without it is an old one: its open interest and USD value are halved, and it
-- is marked as halved from both sides, by this migration.
--
-- The hourly rollup (open_interest_hourly, 0007) follows by its UPDATE
-- trigger, which recomputes every (hour, instrument) the statement touched
-- from the raw rows. Re-running this changes nothing: corrected rows are marked.
UPDATE open_interest
SET open_interest = open_interest / 2,
    open_interest_usd = round(open_interest_usd / 2, 2),
    metadata = COALESCE(metadata, '{}'::jsonb) || jsonb_build_object(
        'open_interest_sides', 'halved_from_both_sides',
        'corrected_by_migration', '0013_bybit_open_interest_one_side')
WHERE exchange = 'bybit-derivatives'
    AND metadata -> 'open_interest_sides' IS NULL;

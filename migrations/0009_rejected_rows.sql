-- The writer's dead letters: a row the database truly refused (a data error, SQLSTATE class 22 or 23) or
-- that could not be encoded (a non-finite number, an invalid time). Never just a log line: an operator can
-- read it here and replay it (`npm run cli -- rejected`).
CREATE TABLE IF NOT EXISTS rejected_rows (
    id BIGSERIAL PRIMARY KEY,
    table_name VARCHAR(50) NOT NULL,
    row_id VARCHAR(255),
    sqlstate VARCHAR(5),                         -- NULL when refused before reaching the database (unencodable)
    message TEXT NOT NULL,
    row JSONB NOT NULL,
    rejected_at TIMESTAMP NOT NULL,
    replayed_at TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_rejected_rows_table ON rejected_rows (table_name, rejected_at DESC);

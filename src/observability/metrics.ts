/**
 * Every metric the service exports on /metrics. Hot paths update them once per
 * batch of frames or rows, never per message.
 */
import { Metric } from "effect"

export const feedMessages = Metric.counter("feed_messages_total", {
  description: "WebSocket frames received, per feed",
  incremental: true
})
export const feedRecords = Metric.counter("feed_records_total", {
  description: "Normalized records produced, per feed",
  incremental: true
})
export const feedReconnects = Metric.counter("feed_reconnects_total", {
  description: "Connection restarts, per feed and cause",
  incremental: true
})
export const feedDecodeErrors = Metric.counter("feed_decode_errors_total", {
  description: "Frames that did not match the venue's documented format, per feed",
  incremental: true
})
export const elementsDropped = Metric.counter("elements_dropped_total", {
  description: "Unreadable elements (a book level, an instrument) left out of otherwise readable messages, per venue and source; the rest was kept",
  incremental: true
})
export const feedConnected = Metric.gauge("feed_connected", { description: "1 while the feed's socket is open" })
export const feedTradeLag = Metric.gauge("feed_trade_lag_ms", {
  description: "How late trades arrive, from the venue's match time to receipt, over the last 5 to 10 minutes, per feed: quantile 0.5 and 0.99, and quantile 0 (the minimum; below 0 our clock is behind the venue's)"
})
export const streamsStale = Metric.counter("streams_stale_total", {
  description: "Streams (channel x symbol) found silent while their socket stayed busy, and resubscribed alone",
  incremental: true
})
export const bookResyncs = Metric.counter("book_resyncs_total", {
  description: "Order-book resynchronisations, per venue and cause",
  incremental: true
})
export const bookAudits = Metric.counter("book_audits_total", {
  description: "Periodic comparisons of a live book with a REST snapshot, per venue and outcome (ok, diverged, skipped)",
  incremental: true
})
export const bookAuditMismatched = Metric.gauge("book_audit_mismatched_levels", {
  description: "Levels that differed from the venue's snapshot at the last audit, per venue and symbol"
})
export const tradesUnvalued = Metric.counter("trades_unvalued_total", {
  description: "Trades whose quote currency had no live USD rate, or whose instrument was unknown",
  incremental: true
})
export const barLateRecords = Metric.counter("trade_bar_late_records_total", {
  description: "Live trades and liquidations that came after their minute bar was written (each makes a correction)",
  incremental: true
})
export const queueDepth = Metric.gauge("writer_queue_depth", { description: "Rows waiting in each table's queue" })
export const queueDropped = Metric.counter("writer_queue_dropped_total", {
  description: "Rows dropped because a table's queue was full",
  incremental: true
})
export const rowsWritten = Metric.counter("writer_rows_written_total", {
  description: "Rows inserted (conflicts excluded), per table",
  incremental: true
})
export const rowsOffered = Metric.counter("writer_rows_offered_total", {
  description: "Rows sent to the database, per table (duplicates included)",
  incremental: true
})
export const writerBatchSize = Metric.histogram("writer_batch_size", {
  description: "Rows per insert statement",
  boundaries: [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500]
})
export const writerBatchSeconds = Metric.histogram("writer_batch_seconds", {
  description: "Insert statement latency",
  boundaries: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]
})
export const writerFailures = Metric.counter("writer_failures_total", {
  description: "Failed insert attempts (each is retried with backoff)",
  incremental: true
})
export const writerRowsRejected = Metric.counter("writer_rows_rejected_total", {
  description: "Rows the database refused as data (SQLSTATE class 22 or 23) or that could not be encoded, per table and SQLSTATE: each is kept in rejected_rows",
  incremental: true
})
export const writerTableDegraded = Metric.gauge("writer_table_degraded", {
  description: "1 while a table's writer holds a batch the database refused for a passing reason (it retries)"
})
export const writerRowsUnstored = Metric.counter("writer_rows_unstored_total", {
  description: "Rows still queued or in flight when shutdown's drain deadline passed, per table",
  incremental: true
})
export const writerDatabaseUp = Metric.gauge("writer_database_up", {
  description: "1 when the last database operation succeeded"
})
export const restRequests = Metric.counter("rest_requests_total", {
  description: "REST requests, per venue and outcome",
  incremental: true
})
export const restWeightUsed = Metric.gauge("rest_weight_used", {
  description: "Request weight used in the current window, per venue"
})
export const restBanned = Metric.gauge("rest_banned", { description: "1 while a venue has banned us (HTTP 418)" })
export const apiRequests = Metric.counter("api_requests_total", {
  description: "HTTP API requests, per route and status",
  incremental: true
})
export const apiRequestsAbandoned = Metric.counter("api_requests_abandoned_total", {
  description: "API requests whose client closed its connection before the answer, per route (not an error: logged at Debug)",
  incremental: true
})
export const apiRejected = Metric.counter("api_requests_rejected_total", {
  description: "API requests refused before any query ran, per reason (unauthorized, rate_limited, locked_out)",
  incremental: true
})

export const venueFigureMismatches = Metric.counter("venue_figure_mismatch_total", {
  description: "Our USD figures more than 0.1 % away from the venue's own (OKX oiUsd), per venue",
  incremental: true
})

export const crossVenueOutliers = Metric.counter("cross_venue_outlier_total", {
  description: "Samples at which a venue's figure (field: mid, open_interest change, funding per 8 h) was beyond the configured distance from the cross-venue median of its asset, per venue and field",
  incremental: true
})

export const eventLoopDelay = Metric.gauge("event_loop_delay_ms", {
  description: "How late the event loop ran a 10 ms timer over the last complete 10-second window (perf_hooks monitorEventLoopDelay, the timer's own 10 ms taken off): quantile 0.5, 0.99 and 1 (the maximum)"
})
export const eventLoopDelayWindows = Metric.counter("event_loop_delay_windows_total", {
  description: "10-second event-loop delay windows published so far: a reader sampling /metrics sees a new event_loop_delay_ms window each time it moves",
  incremental: true
})

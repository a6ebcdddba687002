//! An HTTP receiver for pitcrew-tail's ndjson, Loki and Elasticsearch sinks. (Skeleton.)

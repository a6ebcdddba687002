//! `pitcrew-metrics` (issue 13, open): the metrics adapter sidecar. GROUNDWORK ONLY: the pure
//! parsers of its sources, each with its tests; there is no binary, no server, no file
//! following and no registry yet (the README lists metrics as not built).
//!
//! Module map: [`rules`] (the YAML rule file for log lines: regex, JSON or logfmt matches →
//! counter, gauge and histogram updates, validated at load with each problem's line),
//! [`statsd`] (StatsD and DogStatsD datagrams, and statsd_exporter-style glob mappings),
//! [`textfile`] (node_exporter-style `*.prom` files validated for pass-through) and [`path`]
//! (values and labels picked out of JSON/YAML status documents).

pub mod path;
pub mod rules;
pub mod statsd;
pub mod textfile;

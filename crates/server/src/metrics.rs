//! Prometheus metrics, served as text at `GET /metrics`.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use idm_otp_adapters::store::PoolStatus;

/// The service's metrics and their registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    challenges: IntCounterVec,
    pool_connections: IntGaugeVec,
    pool_max: IntGauge,
    pool_waiting: IntGauge,
}

impl Metrics {
    /// Registers every metric, including `idm_otp_build_info`.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "idm_otp_http_requests_total",
                "HTTP requests by route template, method and status.",
            ),
            &["method", "route", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "idm_otp_http_request_duration_seconds",
                "HTTP request latency by route template, method and status.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["method", "route", "status"],
        )?;
        let challenges = IntCounterVec::new(
            Opts::new(
                "idm_otp_challenges_total",
                "Authenticated challenge calls by outcome: issued, re-served, null, or the error code.",
            ),
            &["outcome"],
        )?;
        let pool_connections = IntGaugeVec::new(
            Opts::new(
                "idm_otp_db_pool_connections",
                "Pooled database connections by state.",
            ),
            &["state"],
        )?;
        let pool_max = IntGauge::new("idm_otp_db_pool_max_connections", "Pool size limit.")?;
        let pool_waiting = IntGauge::new(
            "idm_otp_db_pool_waiting",
            "Requests waiting for a database connection.",
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                "idm_otp_build_info",
                "Build information; the value is always 1.",
            ),
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(challenges.clone()))?;
        registry.register(Box::new(pool_connections.clone()))?;
        registry.register(Box::new(pool_max.clone()))?;
        registry.register(Box::new(pool_waiting.clone()))?;
        registry.register(Box::new(build_info))?;
        Ok(Self {
            registry,
            http_requests,
            http_duration,
            challenges,
            pool_connections,
            pool_max,
            pool_waiting,
        })
    }

    /// Counts one HTTP request.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        let labels = [method, route, status.as_str()];
        self.http_requests.with_label_values(&labels).inc();
        self.http_duration
            .with_label_values(&labels)
            .observe(seconds);
    }

    /// Counts one challenge outcome.
    pub fn observe_challenge(&self, outcome: &str) {
        self.challenges.with_label_values(&[outcome]).inc();
    }

    /// The Prometheus text exposition, with the pool's current state.
    pub fn render(&self, pool: PoolStatus) -> Result<String, prometheus::Error> {
        let gauge = |n: u32| i64::from(n);
        self.pool_connections
            .with_label_values(&["idle"])
            .set(gauge(pool.idle));
        self.pool_connections
            .with_label_values(&["active"])
            .set(gauge(pool.connections.saturating_sub(pool.idle)));
        self.pool_max.set(gauge(pool.max));
        self.pool_waiting
            .set(i64::try_from(pool.waiting).unwrap_or(i64::MAX));
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

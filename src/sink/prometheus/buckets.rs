//! Histogram bucket bounds of the smokeping_* series (`--metrics-buckets`).

use crate::telemetry::go_float;

/// smokeping_prober's default buckets: 5e-05 doubling, 20 of them.
pub const DEFAULT_BUCKETS: [f64; 20] = [
    5e-05, 0.0001, 0.0002, 0.0004, 0.0008, 0.0016, 0.0032, 0.0064, 0.0128, 0.0256, 0.0512, 0.1024,
    0.2048, 0.4096, 0.8192, 1.6384, 3.2768, 6.5536, 13.1072, 26.2144,
];

/// Why `--metrics-buckets` is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BucketsError {
    /// Not a number.
    #[error("{0:?} is not a number")]
    NotANumber(String),
    /// Zero, negative, infinite or NaN.
    #[error("{0} is not a positive finite number of seconds")]
    NotPositive(String),
    /// Not strictly increasing.
    #[error("buckets must be strictly increasing ({0} after {1})")]
    NotIncreasing(String, String),
    /// Nothing given.
    #[error("no buckets given")]
    Empty,
}

/// Histogram bucket bounds, seconds, increasing (`--metrics-buckets`).
#[derive(Debug, Clone, PartialEq)]
pub struct Buckets(pub Vec<f64>);

/// Parses `--metrics-buckets` (see [`parse_bucket_list`]).
pub fn parse_buckets(s: &str) -> Result<Buckets, BucketsError> {
    parse_bucket_list(s).map(Buckets)
}

/// Parses upper bounds in seconds, comma-separated, strictly increasing
/// (`+Inf` is implied).
pub fn parse_bucket_list(s: &str) -> Result<Vec<f64>, BucketsError> {
    let mut out: Vec<f64> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let v: f64 = part
            .parse()
            .map_err(|_| BucketsError::NotANumber(part.to_owned()))?;
        if !(v.is_finite() && v > 0.0) {
            return Err(BucketsError::NotPositive(part.to_owned()));
        }
        if let Some(&last) = out.last() {
            if v <= last {
                return Err(BucketsError::NotIncreasing(go_float(v), go_float(last)));
            }
        }
        out.push(v);
    }
    if out.is_empty() {
        return Err(BucketsError::Empty);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_buckets_read_as_smokeping_prober_writes_them() {
        let want = "5e-05,0.0001,0.0002,0.0004,0.0008,0.0016,0.0032,0.0064,0.0128,0.0256,0.0512,0.1024,0.2048,0.4096,0.8192,1.6384,3.2768,6.5536,13.1072,26.2144";
        let got: Vec<String> = DEFAULT_BUCKETS.iter().map(|b| go_float(*b)).collect();
        assert_eq!(got.join(","), want);
        assert_eq!(parse_bucket_list(want).unwrap(), DEFAULT_BUCKETS.to_vec());
    }

    #[test]
    fn bad_buckets_are_refused() {
        assert_eq!(
            parse_bucket_list("0.1,x"),
            Err(BucketsError::NotANumber("x".into()))
        );
        assert!(matches!(
            parse_bucket_list("0.1,-1"),
            Err(BucketsError::NotPositive(_))
        ));
        assert!(matches!(
            parse_bucket_list("0.1,inf"),
            Err(BucketsError::NotPositive(_))
        ));
        assert!(matches!(
            parse_bucket_list("0.2,0.1"),
            Err(BucketsError::NotIncreasing(..))
        ));
        assert_eq!(parse_bucket_list(" , "), Err(BucketsError::Empty));
        assert_eq!(
            parse_bucket_list("0.001, 0.01,1").unwrap(),
            vec![0.001, 0.01, 1.0]
        );
    }
}

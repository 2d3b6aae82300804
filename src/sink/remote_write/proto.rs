//! The messages of Prometheus remote write 1.0 (`prometheus.WriteRequest`
//! of the published `remote.proto` and `types.proto`), the fields a
//! sender fills, with their field numbers. Encoded with prost, then
//! compressed with snappy's block format.

/// A write request: series with their samples.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// The series.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// One series: its labels (sorted by name, `__name__` among them) and
/// samples in time order.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Labels, sorted by name.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Samples, oldest first.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// A label.
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct Label {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// A sample.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// Value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Unix milliseconds.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// The body of a request: an encoded `WriteRequest` (its `timeseries`
/// fields one after the other), snappy-compressed (block format, as the
/// protocol asks).
pub fn compress(raw: &[u8]) -> Vec<u8> {
    // Compressing a buffer in memory fails only past snappy's size limit
    // (about 4 GB), which a batch never nears.
    snap::raw::Encoder::new()
        .compress_vec(raw)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_reads_back_as_the_protocol_has_it() {
        let req = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![
                    Label {
                        name: "__name__".into(),
                        value: "m".into(),
                    },
                    Label {
                        name: "site".into(),
                        value: "a".into(),
                    },
                ],
                samples: vec![Sample {
                    value: 0.25,
                    timestamp: 1_800_000_000_000,
                }],
            }],
        };
        // Series encoded one by one and concatenated are the message.
        let mut raw = Vec::new();
        for ts in &req.timeseries {
            prost::encoding::message::encode(1, ts, &mut raw);
        }
        let body = compress(&raw);
        let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        // Field 1 (timeseries), length-delimited; inside, field 1 (labels).
        assert_eq!(raw[0], 0x0a);
        let back: WriteRequest = prost::Message::decode(raw.as_slice()).unwrap();
        assert_eq!(back, req);
    }
}

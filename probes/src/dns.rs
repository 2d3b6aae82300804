//! DNS probe: one query over UDP to one server; the round-trip time is from
//! sending the query to receiving the matching response.
//!
//! A datagram that is not the response to our query (another id, another
//! question, not a response, unparsable) is ignored, and the probe keeps
//! waiting until its timeout. Messages are built and parsed with
//! `hickory-proto`.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use tokio::net::UdpSocket;

use crate::outcome::{Lost, PingResult};

/// Response codes of the DNS header (RFC 1035, 2136), by name.
const RCODES: &[(&str, u16)] = &[
    ("NOERROR", 0),
    ("FORMERR", 1),
    ("SERVFAIL", 2),
    ("NXDOMAIN", 3),
    ("NOTIMP", 4),
    ("REFUSED", 5),
    ("YXDOMAIN", 6),
    ("YXRRSET", 7),
    ("NXRRSET", 8),
    ("NOTAUTH", 9),
    ("NOTZONE", 10),
];

/// Largest UDP response read (EDNS-sized; longer datagrams are truncated by
/// the kernel and then fail to parse, which only matters for ids we ignore).
const MAX_DATAGRAM: usize = 4096;

/// Whether `s` names a record type that can be asked for over UDP
/// (`A`, `AAAA`, `MX`, `TXT`, `NS`, `SOA`, `CNAME`, `PTR`, `SRV`, ...),
/// case-insensitively.
pub fn valid_record_type(s: &str) -> bool {
    parse_record_type(s).is_some()
}

/// Whether `s` is a DNS response code name (`NOERROR`, `NXDOMAIN`,
/// `SERVFAIL`, `REFUSED`, ...), case-insensitively.
pub fn valid_rcode(s: &str) -> bool {
    parse_rcode(s).is_some()
}

fn parse_record_type(s: &str) -> Option<RecordType> {
    let rtype = RecordType::from_str(&s.to_ascii_uppercase()).ok()?;
    match rtype {
        // Zone transfers need TCP; TSIG is not a question.
        RecordType::AXFR | RecordType::IXFR | RecordType::TSIG | RecordType::OPT => None,
        other => Some(other),
    }
}

fn parse_rcode(s: &str) -> Option<u16> {
    RCODES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(s))
        .map(|&(_, code)| code)
}

fn rcode_name(code: u16) -> String {
    RCODES
        .iter()
        .find(|&&(_, c)| c == code)
        .map(|&(name, _)| name.to_string())
        .unwrap_or_else(|| format!("RCODE{code}"))
}

/// Sends one recursive query for `name`/`rtype` to `server` and returns the
/// time until its response. With `expect_rcode`, a response with another
/// response code is lost ([`Lost::BadAnswer`]); without, any response is an
/// answer. Invalid `name`, `rtype` or `expect_rcode` → [`Lost::Io`] (the
/// caller is expected to validate them first).
pub async fn query_time(
    server: SocketAddr,
    name: &str,
    rtype: &str,
    expect_rcode: Option<&str>,
    timeout: Duration,
) -> PingResult {
    let rtype_parsed = parse_record_type(rtype)
        .ok_or_else(|| Lost::Io(format!("invalid record type {rtype:?}")))?;
    let expected = match expect_rcode {
        Some(rc) => {
            Some(parse_rcode(rc).ok_or_else(|| Lost::Io(format!("invalid response code {rc:?}")))?)
        }
        None => None,
    };
    let mut qname =
        Name::from_utf8(name).map_err(|e| Lost::Io(format!("invalid name {name:?}: {e}")))?;
    // Names are absolute: no search domains.
    qname.set_fqdn(true);
    let query = Query::query(qname, rtype_parsed);
    let id: u16 = rand::random();
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(query.clone());
    let packet = message
        .to_vec()
        .map_err(|e| Lost::Io(format!("cannot encode query: {e}")))?;

    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|e| Lost::Io(format!("bind: {e}")))?;
    // A connected socket only receives datagrams from `server`.
    socket
        .connect(server)
        .await
        .map_err(|e| Lost::Io(format!("connect to {server}: {e}")))?;

    let started = Instant::now();
    let exchange = async {
        socket.send(&packet).await.map_err(|e| Lost::from_io(&e))?;
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let n = socket.recv(&mut buf).await.map_err(|e| Lost::from_io(&e))?;
            let received = started.elapsed();
            let Ok(response) = Message::from_vec(&buf[..n]) else {
                tracing::debug!(%server, bytes = n, "ignoring unparsable DNS datagram");
                continue;
            };
            if !is_response_to(&response, id, &query) {
                tracing::debug!(%server, id = response.metadata.id, "ignoring unrelated DNS response");
                continue;
            }
            return Ok((received, u16::from(response.metadata.response_code)));
        }
    };
    let (rtt, rcode) = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| Lost::Timeout)??;
    match expected {
        Some(want) if want != rcode => Err(Lost::BadAnswer(format!(
            "response code {}, expected {}",
            rcode_name(rcode),
            rcode_name(want)
        ))),
        _ => Ok(rtt),
    }
}

/// Whether `response` answers our query `id` for `query`.
fn is_response_to(response: &Message, id: u16, query: &Query) -> bool {
    response.metadata.id == id
        && response.metadata.message_type == MessageType::Response
        && response.queries.len() == 1
        && response.queries.iter().all(|q| {
            q.query_type() == query.query_type()
                && q.query_class() == query.query_class()
                && same_name(q.name(), query.name())
        })
}

/// Domain names compare case-insensitively, with or without the final dot.
fn same_name(a: &Name, b: &Name) -> bool {
    let (a, b) = (a.to_ascii(), b.to_ascii());
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_types() {
        for t in [
            "A", "aaaa", "Mx", "TXT", "NS", "SOA", "CNAME", "PTR", "SRV", "CAA", "ANY",
        ] {
            assert!(valid_record_type(t), "{t}");
        }
        for t in ["", "AXFR", "IXFR", "TSIG", "OPT", "BOGUS", "A "] {
            assert!(!valid_record_type(t), "{t}");
        }
    }

    #[test]
    fn rcodes() {
        for r in ["NOERROR", "nxdomain", "ServFail", "REFUSED", "NOTZONE"] {
            assert!(valid_rcode(r), "{r}");
        }
        for r in ["", "OK", "NOERR", "BADVERS"] {
            assert!(!valid_rcode(r), "{r}");
        }
        assert_eq!(rcode_name(3), "NXDOMAIN");
        assert_eq!(rcode_name(15), "RCODE15");
    }

    #[test]
    fn matching() {
        let name = Name::from_utf8("example.com.").unwrap();
        let query = Query::query(name.clone(), RecordType::A);
        let mut resp = Message::new(7, MessageType::Response, OpCode::Query);
        resp.add_query(query.clone());
        assert!(is_response_to(&resp, 7, &query));
        assert!(!is_response_to(&resp, 8, &query));

        let upper = Query::query(Name::from_utf8("EXAMPLE.com.").unwrap(), RecordType::A);
        let mut resp_upper = Message::new(7, MessageType::Response, OpCode::Query);
        resp_upper.add_query(upper);
        assert!(is_response_to(&resp_upper, 7, &query));

        let mut other_type = Message::new(7, MessageType::Response, OpCode::Query);
        other_type.add_query(Query::query(name.clone(), RecordType::AAAA));
        assert!(!is_response_to(&other_type, 7, &query));

        let mut not_response = Message::new(7, MessageType::Query, OpCode::Query);
        not_response.add_query(query.clone());
        assert!(!is_response_to(&not_response, 7, &query));

        let no_question = Message::new(7, MessageType::Response, OpCode::Query);
        assert!(!is_response_to(&no_question, 7, &query));
    }

    #[tokio::test]
    async fn invalid_inputs_are_lost_without_sending() {
        let server: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let t = Duration::from_millis(100);
        let r = query_time(server, "example.com", "BOGUS", None, t).await;
        assert!(
            matches!(r, Err(Lost::Io(ref m)) if m.contains("record type")),
            "{r:?}"
        );
        let r = query_time(server, "example.com", "A", Some("OK"), t).await;
        assert!(
            matches!(r, Err(Lost::Io(ref m)) if m.contains("response code")),
            "{r:?}"
        );
    }
}

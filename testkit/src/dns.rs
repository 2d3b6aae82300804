//! A UDP DNS server on 127.0.0.1 answering every query with a configured
//! response code, and addresses and a TTL the test may change while it
//! runs.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::net::UdpSocket;

use crate::background::Background;

/// Response code names understood by [`DnsServer::start`].
const RCODES: &[(&str, u8)] = &[
    ("NOERROR", 0),
    ("FORMERR", 1),
    ("SERVFAIL", 2),
    ("NXDOMAIN", 3),
    ("NOTIMP", 4),
    ("REFUSED", 5),
];

/// Answers every query after a delay, echoing its id and question, with a
/// response code; for `NOERROR`, `A` queries get `127.0.0.1` and `AAAA`
/// queries `::1` (TTL 60) unless [`DnsServer::set_answer`] says otherwise.
#[derive(Debug)]
pub struct DnsServer {
    addr: SocketAddr,
    queries: Arc<AtomicUsize>,
    reply: Arc<Mutex<Reply>>,
    _bg: Background,
}

/// What the server answers now.
#[derive(Debug, Clone, Copy)]
struct Reply {
    code: u8,
    a: Ipv4Addr,
    aaaa: Ipv6Addr,
    ttl: u32,
}

fn rcode(name: &str) -> u8 {
    RCODES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|&(_, code)| code)
        .unwrap_or_else(|| panic!("testkit: unknown DNS rcode {name:?}"))
}

impl DnsServer {
    /// Starts the server. `rcode` is one of `NOERROR`, `FORMERR`,
    /// `SERVFAIL`, `NXDOMAIN`, `NOTIMP`, `REFUSED` (any case); panics on
    /// another.
    pub fn start(delay: Duration, rcode: &str) -> DnsServer {
        DnsServer::start_inner(delay, rcode, false)
    }

    /// Like [`DnsServer::start`], but each query first gets two decoys at
    /// once, before the real answer after `delay`: a response with another
    /// id, and one with the right id for another question. A client must
    /// ignore both.
    pub fn start_with_decoys(delay: Duration, rcode: &str) -> DnsServer {
        DnsServer::start_inner(delay, rcode, true)
    }

    fn start_inner(delay: Duration, rcode: &str, decoys: bool) -> DnsServer {
        let reply = Arc::new(Mutex::new(Reply {
            code: self::rcode(rcode),
            a: Ipv4Addr::LOCALHOST,
            aaaa: Ipv6Addr::LOCALHOST,
            ttl: 60,
        }));
        let current = reply.clone();
        let std_socket =
            StdUdpSocket::bind("127.0.0.1:0").expect("testkit: cannot bind UDP 127.0.0.1:0");
        std_socket
            .set_nonblocking(true)
            .expect("testkit: cannot make the UDP socket non-blocking");
        let addr = std_socket
            .local_addr()
            .expect("testkit: socket has no address");
        let queries = Arc::new(AtomicUsize::new(0));
        let count = queries.clone();
        let bg = Background::spawn("dns", move |mut stop| async move {
            let socket = Arc::new(
                UdpSocket::from_std(std_socket).expect("testkit: cannot register UDP socket"),
            );
            let mut buf = vec![0u8; 4096];
            loop {
                tokio::select! {
                    _ = &mut stop => return,
                    res = socket.recv_from(&mut buf) => {
                        let Ok((n, peer)) = res else {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        };
                        let Ok(request) = Message::from_vec(&buf[..n]) else {
                            continue;
                        };
                        if request.metadata.message_type != MessageType::Query {
                            continue;
                        }
                        count.fetch_add(1, Ordering::SeqCst);
                        let socket = socket.clone();
                        let now = *current.lock().unwrap_or_else(|e| e.into_inner());
                        tokio::spawn(async move {
                            if decoys {
                                for decoy in make_decoys(&request, now) {
                                    let _ = socket.send_to(&decoy, peer).await;
                                }
                            }
                            tokio::time::sleep(delay).await;
                            if let Some(answer) = encode(&respond(&request, now)) {
                                let _ = socket.send_to(&answer, peer).await;
                            }
                        });
                    }
                }
            }
        });
        DnsServer {
            addr,
            queries,
            reply,
            _bg: bg,
        }
    }

    /// From now on, `NOERROR` answers give `a` to `A` queries and `aaaa`
    /// to `AAAA` queries, with this TTL (seconds).
    pub fn set_answer(&self, a: Ipv4Addr, aaaa: Ipv6Addr, ttl: u32) {
        let mut r = self.reply.lock().unwrap_or_else(|e| e.into_inner());
        (r.a, r.aaaa, r.ttl) = (a, aaaa, ttl);
    }

    /// From now on, answers carry this response code (as for
    /// [`DnsServer::start`]).
    pub fn set_rcode(&self, rcode: &str) {
        self.reply.lock().unwrap_or_else(|e| e.into_inner()).code = self::rcode(rcode);
    }

    /// The server's address (UDP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queries received so far.
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

/// The response to `request`.
fn respond(request: &Message, reply: Reply) -> Message {
    let code = reply.code;
    let mut response = Message::new(
        request.metadata.id,
        MessageType::Response,
        request.metadata.op_code,
    );
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.metadata.response_code = ResponseCode::from_low(code);
    response.add_queries(request.queries.iter().cloned());
    if code == 0 {
        for q in &request.queries {
            let rdata = match q.query_type() {
                RecordType::A => RData::A(A(reply.a)),
                RecordType::AAAA => RData::AAAA(AAAA(reply.aaaa)),
                _ => continue,
            };
            response.add_answer(Record::from_rdata(q.name().clone(), reply.ttl, rdata));
        }
    }
    response
}

/// Two wrong responses: another id; the right id for another question.
fn make_decoys(request: &Message, reply: Reply) -> Vec<Vec<u8>> {
    let mut other_id = respond(request, reply);
    other_id.metadata.id = request.metadata.id.wrapping_add(1);
    let mut other_question = respond(request, reply);
    other_question.queries.clear();
    if let Ok(name) = Name::from_ascii("decoy.invalid.") {
        other_question.add_query(Query::query(name, RecordType::A));
    }
    [other_id, other_question]
        .iter()
        .filter_map(encode)
        .collect()
}

fn encode(message: &Message) -> Option<Vec<u8>> {
    message.to_vec().ok()
}

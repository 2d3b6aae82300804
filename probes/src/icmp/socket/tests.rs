use super::*;

#[test]
fn error_messages_say_what_and_why() {
    let eacces = io::Error::from_raw_os_error(Errno::EACCES as i32);
    let eperm = io::Error::from_raw_os_error(Errno::EPERM as i32);
    let m = open_error_message(
        Family::V4,
        SocketKind::Auto,
        Some(&eacces),
        Some(&eperm),
        1000,
    );
    assert_eq!(
        m,
        format!(
            "cannot open ICMP socket for IPv4: need CAP_NET_RAW or net.ipv4.ping_group_range \
             covering gid 1000 (datagram socket: {eacces}; raw socket: {eperm})"
        )
    );
    let m = open_error_message(Family::V6, SocketKind::Datagram, Some(&eacces), None, 5);
    assert!(
        m.starts_with(
            "cannot open ICMP datagram socket for IPv6: need net.ipv4.ping_group_range covering gid 5"
        ),
        "{m}"
    );
    let m = open_error_message(Family::V4, SocketKind::Raw, None, Some(&eperm), 5);
    assert!(
        m.starts_with("cannot open raw ICMP socket for IPv4: need CAP_NET_RAW ("),
        "{m}"
    );

    let eafno = io::Error::from_raw_os_error(Errno::EAFNOSUPPORT as i32);
    let m = open_error_message(Family::V6, SocketKind::Raw, None, Some(&eafno), 0);
    assert_eq!(
        m,
        format!("cannot open raw ICMP socket for IPv6 (raw socket: {eafno})")
    );
}

/// A real socket on loopback delivers kernel receive and transmit
/// timestamps, taken when the packet arrived and left: the transmit
/// stamp comes back on the error queue with the packet (its token
/// inside), and the reply's receive stamp is later than it. The first
/// packets of a process may come without a receive stamp (the kernel
/// turns timestamping on a moment after the first socket asks), so
/// pings are repeated until one has both, bounded.
#[test]
fn loopback_echo_has_kernel_timestamps() {
    let sock = match open(&Binding::any(Family::V4), &IcmpConfig::default()) {
        Ok(s) => s,
        Err(e) => {
            testkit::require::skip(
                "loopback_echo_has_kernel_timestamps",
                &format!("needs root (CAP_NET_RAW) or net.ipv4.ping_group_range ({e})"),
            );
            return;
        }
    };
    assert!(sock.tx_timestamps() && sock.rx_stamps_at_arrival());
    let magic = *b"tstamp!!";
    let mut buf = [0u8; 2048];
    let give_up = std::time::Instant::now() + Duration::from_secs(5);
    for seq in 1..=50u16 {
        if std::time::Instant::now() > give_up {
            break;
        }
        let key = 0x5151_0000 | u32::from(seq);
        let token = super::super::packet::Token {
            magic,
            socket_id: 1,
            key,
        };
        let req =
            super::super::packet::build_echo_request(Family::V4, 0x5151, seq, &token.encode());
        sock.send_to(&req, IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
            .expect("send to 127.0.0.1");
        std::thread::sleep(Duration::from_millis(20));
        // The transmit stamp, with the sent packet.
        let mut tx = None;
        while let Ok(Some(r)) = sock.recv_tx(&mut buf) {
            if super::super::packet::Token::find(&buf[..r.len], &magic)
                .is_some_and(|t| t.key == key)
            {
                tx = r.timestamp;
            }
        }
        let tx = tx.expect("a transmit timestamp for every send");
        // The reply, with its receive stamp (maybe none at first).
        let mut rx = None;
        while let Ok(Some(r)) = sock.recv(&mut buf, false) {
            let with_hdr = sock.kind() == SocketKind::Raw;
            if let Ok(super::super::packet::Message::EchoReply { payload, .. }) =
                super::super::packet::parse(Family::V4, with_hdr, &buf[..r.len])
            {
                if super::super::packet::Token::decode(payload).is_some_and(|t| t.key == key) {
                    rx = Some(r.timestamp);
                }
            }
        }
        match rx.expect("an echo reply from 127.0.0.1") {
            Some(rx) => {
                let rtt = rx.duration_since(tx).expect("received after sent");
                assert!(rtt < Duration::from_millis(50), "{rtt:?}");
                return;
            }
            None => continue,
        }
    }
    panic!("no reply with a receive timestamp from 127.0.0.1");
}

#[test]
fn timespec_conversion() {
    let t = timespec_to_system_time(TimeSpec::new(1, 5));
    assert_eq!(t, Some(SystemTime::UNIX_EPOCH + Duration::new(1, 5)));
    assert_eq!(timespec_to_system_time(TimeSpec::new(-1, 0)), None);
}

#[test]
fn source_family_mismatch_is_an_error() {
    let b = Binding {
        family: Family::V4,
        source: Some(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)),
        interface: None,
        dont_fragment: None,
    };
    // Whether or not we may open sockets, this must be an error.
    assert!(open(&b, &IcmpConfig::default()).is_err());
}

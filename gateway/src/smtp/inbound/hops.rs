//! Loop protection: a message that already passed through too many MTAs is refused at the
//! end of DATA (`554 5.4.6`, RFC 5321 §6.3), before anything is queued.
//!
//! Like Postfix's `hopcount_limit` (default 50), the count is of the `Received` headers the
//! message arrived with: our own, prepended by the session, is not counted.

use crate::smtp::proto::Reply;

/// `Err` when `message` (our Received header first, then the client's headers) carries
/// `max_hops` or more Received headers of its own.
pub fn check(message: &[u8], max_hops: usize) -> Result<(), Reply> {
    let hops = received_headers(message).saturating_sub(1);
    if hops >= max_hops {
        return Err(Reply::too_many_hops(hops));
    }
    Ok(())
}

/// Header fields named `Received` in the header section (up to the first empty line).
fn received_headers(message: &[u8]) -> usize {
    let mut count = 0;
    for line in message.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let name = b"received:";
        if line.len() >= name.len() && line[..name.len()].eq_ignore_ascii_case(name) {
            count += 1;
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::proto::reply::EnhancedStatus;

    fn message(hops: usize) -> Vec<u8> {
        let mut m = b"Received: from us\r\n\tby gw.test\r\n".to_vec();
        for i in 0..hops {
            m.extend_from_slice(format!("received: from hop{i}\r\n").as_bytes());
        }
        m.extend_from_slice(b"Subject: x\r\n\r\nReceived: in the body does not count\r\n");
        m
    }

    #[test]
    fn the_limit_counts_the_headers_the_message_arrived_with() {
        assert_eq!(received_headers(&message(3)), 4);
        assert!(check(&message(49), 50).is_ok());
        let refused = check(&message(50), 50).unwrap_err();
        assert_eq!(
            (refused.code, refused.status),
            (554, EnhancedStatus(5, 4, 6))
        );
        assert!(check(&message(0), 1).is_ok());
    }
}

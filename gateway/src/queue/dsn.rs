//! Delivery status notifications (RFC 3464 multipart/report) for bounces and expiry.

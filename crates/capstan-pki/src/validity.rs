//! Validity windows and serial numbers shared by every certificate we issue.

use std::time::Duration;

use rand::rngs::OsRng;
use rand::RngCore;
use rcgen::{CertificateParams, SerialNumber};
use time::OffsetDateTime;

use crate::error::PkiError;

/// How far back `not_before` is set, so that peers whose clocks lag a little
/// accept a certificate that was just issued.
pub(crate) const CLOCK_SKEW: time::Duration = time::Duration::minutes(5);

/// Sets a random serial and the window `[now - skew, now + ttl]` on `params`,
/// returning `not_after` exactly as it is written into the certificate.
pub(crate) fn stamp(
    params: &mut CertificateParams,
    now: OffsetDateTime,
    ttl: Duration,
) -> Result<OffsetDateTime, PkiError> {
    if ttl.is_zero() {
        return Err(PkiError::InvalidTtl {
            ttl,
            reason: "it must be longer than zero",
        });
    }
    let too_long = || PkiError::InvalidTtl {
        ttl,
        reason: "it reaches past the year 9999; use a shorter lifetime",
    };
    let ttl_time = time::Duration::try_from(ttl).map_err(|_| too_long())?;
    // X.509 stores whole seconds; truncate so our value equals the parsed one.
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let not_after = now
        .checked_add(ttl_time)
        .filter(|t| t.year() <= 9999)
        .ok_or_else(too_long)?;
    params.not_before = now - CLOCK_SKEW;
    params.not_after = not_after;
    params.serial_number = Some(random_serial());
    Ok(not_after)
}

/// 128 random bits, positive and without a leading zero byte (RFC 5280 4.1.2.2).
fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_starts_before_now_and_ends_after_ttl() {
        let mut params = CertificateParams::default();
        let now = OffsetDateTime::now_utc();
        let not_after = stamp(&mut params, now, Duration::from_secs(3600)).expect("stamp");
        assert_eq!(not_after.nanosecond(), 0);
        assert!(params.not_before < now - time::Duration::minutes(4));
        assert!((not_after - now - time::Duration::hours(1)).abs() < time::Duration::seconds(1));
        assert_eq!(params.not_after, not_after);
    }

    #[test]
    fn serials_differ() {
        let mut a = CertificateParams::default();
        let mut b = CertificateParams::default();
        let now = OffsetDateTime::now_utc();
        stamp(&mut a, now, Duration::from_secs(1)).expect("stamp");
        stamp(&mut b, now, Duration::from_secs(1)).expect("stamp");
        assert_ne!(a.serial_number, b.serial_number);
    }

    #[test]
    fn zero_and_huge_ttls_are_refused() {
        let mut params = CertificateParams::default();
        let now = OffsetDateTime::now_utc();
        assert!(stamp(&mut params, now, Duration::ZERO).is_err());
        let err = stamp(&mut params, now, Duration::from_secs(u64::MAX)).unwrap_err();
        assert!(err.to_string().contains("shorter lifetime"), "{err}");
    }
}

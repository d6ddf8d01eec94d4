//! The C arithmetic of `pure-ftpwho`'s columns.
//!
//! The percentage is computed in C as
//! `(int) ((long double) current * 100 / (long double) total + 0.5)`,
//! capped at 100: on x86-64 `long double` is the x87 80-bit format (64-bit
//! significand, round to nearest even at each step), and a conversion out
//! of `int` range gives `INT_MIN`. [`percentage`] reproduces each rounding
//! exactly with integer arithmetic.

/// A positive x87 extended-precision value: `m * 2^e`, `m` normalised
/// (bit 63 set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Extended {
    m: u64,
    e: i32,
}

/// Rounds the exact value `m * 2^e` (`m > 0`) to 64 significant bits,
/// nearest even. `sticky` tells that nonzero bits below `m` were already
/// dropped; callers then give at least 66 significant bits.
fn round(m: u128, e: i32, sticky: bool) -> Extended {
    let bits = 128 - m.leading_zeros() as i32;
    if bits <= 64 {
        let shift = 64 - bits;
        return Extended {
            m: (m << shift) as u64,
            e: e - shift,
        };
    }
    let shift = bits - 64;
    let kept = m >> shift;
    let rest = m & ((1u128 << shift) - 1);
    let half = 1u128 << (shift - 1);
    let up = rest > half || (rest == half && (sticky || kept & 1 == 1));
    let mut kept = kept + u128::from(up);
    let mut e = e + shift;
    if kept >> 64 != 0 {
        kept >>= 1;
        e += 1;
    }
    Extended { m: kept as u64, e }
}

fn from_positive(n: i64) -> Extended {
    round(n as u128, 0, false)
}

fn mul(a: Extended, b: Extended) -> Extended {
    round(u128::from(a.m) * u128::from(b.m), a.e + b.e, false)
}

fn div(a: Extended, b: Extended) -> Extended {
    let num = u128::from(a.m) << 64;
    let den = u128::from(b.m);
    let (q, r) = (num / den, num % den);
    // Two more quotient bits, then the remainder as the sticky bit.
    let r4 = r << 2;
    let q = (q << 2) | (r4 / den);
    round(q, a.e - b.e - 66, r4 % den != 0)
}

fn add_half(a: Extended) -> Extended {
    let emin = a.e.min(-1);
    let sum = (u128::from(a.m) << (a.e - emin)) + (1u128 << (-1 - emin));
    round(sum, emin, false)
}

/// `(int)` of a value, truncating; `INT_MIN` when out of range.
fn to_int(a: Extended) -> i32 {
    // a >= 2^63 * 2^e, so a >= 2^31 exactly when e >= -32.
    if a.e >= -32 {
        return i32::MIN;
    }
    let shift = -a.e;
    if shift >= 64 {
        0
    } else {
        (a.m >> shift) as i32
    }
}

/// `pure-ftpwho`'s percentage of a transfer: `current * 100 / total`
/// rounded half up in `long double`, capped at 100, `INT_MIN` when the
/// C conversion overflows. Callers check `current > 0 && total > 0`, as C
/// does; other inputs give 0.
pub fn percentage(current: i64, total: i64) -> i32 {
    if current <= 0 || total <= 0 {
        return 0;
    }
    let hundred = from_positive(100);
    let pct = div(mul(from_positive(current), hundred), from_positive(total));
    let pcti = to_int(add_half(pct));
    if pcti > 100 {
        100
    } else {
        pcti
    }
}

/// `(unsigned long) (current - restart) / divisor` with C's wrapping, 0
/// for a zero divisor.
pub(crate) fn per_second(current: i64, restart: i64, divisor: u64) -> u64 {
    if divisor == 0 {
        return 0;
    }
    (current.wrapping_sub(restart) as u64) / divisor
}

/// `(unsigned long long) (size / 1024)`: C's signed division, then the
/// bits as unsigned.
pub(crate) fn kib(size: i64) -> u64 {
    (size / 1024) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_exact_values() {
        assert_eq!(percentage(1, 4), 25);
        assert_eq!(percentage(1, 3), 33);
        assert_eq!(percentage(2, 3), 67);
        assert_eq!(percentage(1, 200), 1); // 0.5 + 0.5 rounds up
        assert_eq!(percentage(1, 201), 0);
        assert_eq!(percentage(199, 200), 100); // 99.5 -> 100
        assert_eq!(percentage(5, 4), 100); // capped
        assert_eq!(percentage(0, 4), 0);
        assert_eq!(percentage(4, 0), 0);
    }

    #[test]
    fn overflowing_conversion_gives_int_min() {
        assert_eq!(percentage(1 << 40, 1), i32::MIN);
        assert_eq!(percentage(i64::MAX, 1), i32::MIN);
        // 21474836 * 100 + 0.5 < 2^31: capped at 100.
        assert_eq!(percentage(21_474_836, 1), 100);
        // 21474837 * 100 >= 2^31 - 0.5: INT_MIN.
        assert_eq!(percentage(21_474_837, 1), i32::MIN);
    }

    #[test]
    fn agrees_with_f64_where_f64_is_exact_enough() {
        for current in [1i64, 7, 99, 1000, 123_456, 999_999_937] {
            for total in [1i64, 3, 7, 100, 4096, 1_000_000_007] {
                let f = (current as f64 * 100.0) / total as f64 + 0.5;
                let want = if f >= 2147483648.0 {
                    i32::MIN
                } else {
                    (f as i32).min(100)
                };
                let got = percentage(current, total);
                // f64 may differ only next to a rounding boundary.
                let near = (f - f.floor()).abs() < 1e-9;
                if !near {
                    assert_eq!(got, want, "{current} / {total}");
                }
            }
        }
    }

    #[test]
    fn rounding_of_extended_steps() {
        // 2^64 - 1 needs 64 bits: exact.
        let x = round(u128::from(u64::MAX), 0, false);
        assert_eq!((x.m, x.e), (u64::MAX, 0));
        // 2^64 + 1 rounds down to 2^64 (tie-free), 2^64 + 3 up to 2^64 + 4.
        let x = round((1u128 << 64) + 1, 0, false);
        assert_eq!((x.m, x.e), (1 << 63, 1));
        let x = round((1u128 << 64) + 3, 0, false);
        assert_eq!((x.m, x.e), ((1 << 63) + 2, 1));
        // A tie rounds to even, unless sticky says it is above the tie.
        let x = round((1u128 << 65) + 2, 0, false);
        assert_eq!((x.m, x.e), (1 << 63, 2));
        let x = round((1u128 << 65) + 2, 0, true);
        assert_eq!((x.m, x.e), ((1 << 63) + 1, 2));
    }
}

//! Names of uids and gids in the user and group databases, looked up with
//! the reentrant `getpwuid_r(3)` and `getgrgid_r(3)`, as the bytes the
//! database holds (not necessarily UTF-8).

use std::ffi::CStr;

/// The name of `uid` in the user database, if any and not empty.
pub fn user_name(uid: u32) -> Option<Vec<u8>> {
    name_lookup(
        // SAFETY: getpwuid_r fills the passwd and the buffer it is given,
        // within the length it is told, and sets `result`.
        |pwd: &mut libc::passwd, buf, result| unsafe {
            libc::getpwuid_r(uid, pwd, buf.as_mut_ptr().cast(), buf.len(), result)
        },
        |pwd| pwd.pw_name,
    )
}

/// The name of `gid` in the group database, if any and not empty.
pub fn group_name(gid: u32) -> Option<Vec<u8>> {
    name_lookup(
        // SAFETY: getgrgid_r fills the group and the buffer it is given,
        // within the length it is told, and sets `result`.
        |grp: &mut libc::group, buf, result| unsafe {
            libc::getgrgid_r(gid, grp, buf.as_mut_ptr().cast(), buf.len(), result)
        },
        |grp| grp.gr_name,
    )
}

/// Runs a `get*_r` look-up, growing its buffer on `ERANGE`, and copies the
/// name field of the entry found (`None` when none, or an empty name).
fn name_lookup<E>(
    fill: impl Fn(&mut E, &mut [u8], &mut *mut E) -> libc::c_int,
    name: impl Fn(&E) -> *const libc::c_char,
) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: E is passwd or group, plain C structs for which all-zero
        // is valid (null pointers).
        let mut entry: E = unsafe { std::mem::zeroed() };
        let mut result = std::ptr::null_mut();
        let rc = fill(&mut entry, &mut buf, &mut result);
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        let field = name(&entry);
        if rc != 0 || result.is_null() || field.is_null() {
            return None;
        }
        // SAFETY: the look-up succeeded: the field points at a C string in
        // buf, which is alive and unchanged until the copy below.
        let name = unsafe { CStr::from_ptr(field) }.to_bytes();
        return (!name.is_empty()).then(|| name.to_vec());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_named_and_an_unused_id_is_not() {
        assert_eq!(user_name(0).as_deref(), Some(&b"root"[..]));
        assert_eq!(group_name(0).as_deref(), Some(&b"root"[..]));
        assert_eq!(user_name(3_999_999_999), None);
        assert_eq!(group_name(3_999_999_999), None);
    }
}

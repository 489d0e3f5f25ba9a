//! Socket addresses between the application and the sentry, the same for every
//! family. In (`bind`, `connect`, `sendto`): the bytes, at most a
//! `sockaddr_storage`, as Linux's `move_addr_to_kernel`. Out (`accept`,
//! `getsockname`, `getpeername`, `recvfrom`, `recvmsg`): the caller's length word
//! says how much room there is, the address is cut to it, and the address's full
//! length is stored back, as Linux's `move_addr_to_user`.

use crate::errno::{Errno, SysResult};
use crate::kernel::Task;
use crate::mm::io;

/// Size of `struct sockaddr_storage`: the longest address a call may pass.
const SOCKADDR_STORAGE_LEN: u64 = 128;

/// Reads the `len` bytes of an address the application passed at `addr`;
/// `EINVAL` for a length outside `0..=sizeof(sockaddr_storage)` (the length is
/// the call's `int`).
pub(super) fn get_sockaddr(task: &Task, addr: u64, len: u64) -> SysResult<Vec<u8>> {
    let len = len as i32;
    if !(0..=SOCKADDR_STORAGE_LEN as i32).contains(&len) {
        return Err(Errno::EINVAL);
    }
    let mut b = vec![0u8; len as usize];
    io::read_exact(task.mem(), addr, &mut b)?;
    Ok(b)
}

/// Writes `bytes` (an encoded address) at `addr`, cut to the room the `int` at
/// `len_addr` gives, and stores `full_len` there. Nothing happens without a
/// length word; a negative room is `EINVAL`; a null `addr` gets no bytes.
pub(super) fn put_sockaddr(
    task: &Task,
    addr: u64,
    len_addr: u64,
    bytes: &[u8],
    full_len: usize,
) -> SysResult<()> {
    if len_addr == 0 {
        return Ok(());
    }
    let mut lb = [0u8; 4];
    io::read_exact(task.mem(), len_addr, &mut lb)?;
    let room = i32::from_le_bytes(lb);
    if room < 0 {
        return Err(Errno::EINVAL);
    }
    let n = bytes.len().min(room as usize);
    if addr != 0 && n > 0 {
        io::write_all(task.mem(), addr, &bytes[..n])?;
    }
    io::write_u32(task.mem(), len_addr, full_len as u32)
}

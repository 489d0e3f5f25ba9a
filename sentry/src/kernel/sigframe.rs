//! The x86-64 signal frame: what the kernel writes on the application stack before
//! running a handler, and reads back in `rt_sigreturn`.
//!
//! Layout (growing down): FP state (64-byte aligned, XSAVE format with the
//! `_fpx_sw_bytes` magic the kernel uses), then `struct rt_sigframe` = return address
//! (`sa_restorer`), `struct ucontext` (flags, link, stack_t, sigcontext, mask) and
//! `siginfo_t`. At handler entry rsp points at the return address, with rsp+8 16-byte
//! aligned, as after a `call`.

use crate::errno::{Errno, SysResult};
use crate::kernel::signals::{AltStack, SigInfo};
use crate::mm::io;
use crate::platform::{AddressSpace, Regs};

/// `uc_flags`: the FP state is in XSAVE format.
const UC_FP_XSTATE: u64 = 1;
/// `uc_flags`: `ss` is saved in the sigcontext.
const UC_SIGCONTEXT_SS: u64 = 2;
/// `uc_flags`: restore `ss` strictly.
const UC_STRICT_RESTORE_SS: u64 = 4;
/// `_fpx_sw_bytes.magic1`.
const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
/// Written right after the XSAVE area.
const FP_XSTATE_MAGIC2: u32 = 0x4650_5845;
/// Offset of `_fpx_sw_bytes` inside the FXSAVE area.
const SW_BYTES_OFFSET: usize = 464;

/// sizeof(struct ucontext) on x86-64 with the kernel's 8-byte sigset.
const UCONTEXT_SIZE: u64 = 8 + 8 + 24 + 256 + 8;
const SIGINFO_SIZE: u64 = abi::signal::SIGINFO_SIZE as u64;
/// Return address + ucontext + siginfo.
const FRAME_SIZE: u64 = 8 + UCONTEXT_SIZE + SIGINFO_SIZE;
/// The red zone below rsp that leaf functions may use.
const RED_ZONE: u64 = 128;

/// Where things went, for setting the handler's registers.
pub struct Frame {
    /// The handler's rsp.
    pub sp: u64,
    /// Address of the siginfo (rsi).
    pub info: u64,
    /// Address of the ucontext (rdx).
    pub ucontext: u64,
}

fn sigcontext_bytes(r: &Regs, mask: u64, fpstate: u64, fault_addr: u64, trapno: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(256);
    for v in [
        r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rdi, r.rsi, r.rbp, r.rbx, r.rdx,
        r.rax, r.rcx, r.rsp, r.rip, r.eflags,
    ] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    for v in [r.cs as u16, r.gs as u16, r.fs as u16, r.ss as u16] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(&0u64.to_le_bytes()); // err
    b.extend_from_slice(&trapno.to_le_bytes());
    b.extend_from_slice(&mask.to_le_bytes()); // oldmask
    b.extend_from_slice(&fault_addr.to_le_bytes()); // cr2
    b.extend_from_slice(&fpstate.to_le_bytes());
    b.resize(256, 0); // reserved
    b
}

/// Builds the frame for `info` and returns its addresses. `fp` is the context's FP
/// state (XSAVE layout); `mask` the mask to restore on return; `alt` the thread's
/// alternate stack, used when `on_stack` (SA_ONSTACK) and not already on it.
#[allow(clippy::too_many_arguments)]
pub fn build(
    mem: &dyn AddressSpace,
    regs: &Regs,
    fp: &[u8],
    info: &SigInfo,
    mask: u64,
    alt: &AltStack,
    on_stack: bool,
    restorer: u64,
) -> SysResult<Frame> {
    let use_alt = on_stack && alt.enabled() && !alt.contains(regs.rsp);
    let mut sp = if use_alt {
        alt.sp.wrapping_add(alt.size)
    } else {
        regs.rsp.wrapping_sub(RED_ZONE)
    };
    // FP state: the XSAVE area, plus MAGIC2 after it.
    let mut fpbuf = fp.to_vec();
    if fpbuf.len() < 512 {
        fpbuf.resize(512, 0);
    }
    let xsave = fpbuf.len() > 512;
    if xsave {
        let xfeatures = u64::from_le_bytes(fpbuf[512..520].try_into().map_err(|_| Errno::EFAULT)?);
        let extended = fpbuf.len() as u32 + 4;
        let sw = &mut fpbuf[SW_BYTES_OFFSET..SW_BYTES_OFFSET + 24];
        sw[0..4].copy_from_slice(&FP_XSTATE_MAGIC1.to_le_bytes());
        sw[4..8].copy_from_slice(&extended.to_le_bytes());
        sw[8..16].copy_from_slice(&xfeatures.to_le_bytes());
        sw[16..20].copy_from_slice(&(fp.len() as u32).to_le_bytes());
        fpbuf.extend_from_slice(&FP_XSTATE_MAGIC2.to_le_bytes());
    }
    sp = sp.checked_sub(fpbuf.len() as u64).ok_or(Errno::EFAULT)? & !63;
    let fpstate = sp;
    sp = (sp.checked_sub(FRAME_SIZE).ok_or(Errno::EFAULT)? & !15).wrapping_sub(8);
    if use_alt && sp < alt.sp {
        // The frame does not fit on the alternate stack.
        return Err(Errno::EFAULT);
    }
    let ucontext = sp + 8;
    let info_addr = ucontext + UCONTEXT_SIZE;

    let mut frame = Vec::with_capacity(FRAME_SIZE as usize);
    frame.extend_from_slice(&restorer.to_le_bytes());
    let flags = UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS | if xsave { UC_FP_XSTATE } else { 0 };
    frame.extend_from_slice(&flags.to_le_bytes());
    frame.extend_from_slice(&0u64.to_le_bytes()); // uc_link
    frame.extend_from_slice(&alt.sp.to_le_bytes());
    let ss_flags: i32 = if !alt.enabled() {
        crate::kernel::signals::SS_DISABLE
    } else if alt.contains(regs.rsp) {
        crate::kernel::signals::SS_ONSTACK
    } else {
        0
    };
    frame.extend_from_slice(&ss_flags.to_le_bytes());
    frame.extend_from_slice(&[0u8; 4]);
    frame.extend_from_slice(&alt.size.to_le_bytes());
    let (fault_addr, trapno) = match info.signo {
        libc::SIGSEGV | libc::SIGBUS => (info.addr, 14),
        _ => (0, 0),
    };
    frame.extend_from_slice(&sigcontext_bytes(regs, mask, fpstate, fault_addr, trapno));
    frame.extend_from_slice(&mask.to_le_bytes()); // uc_sigmask
    frame.extend_from_slice(&info.to_bytes());
    debug_assert_eq!(frame.len() as u64, FRAME_SIZE);

    io::write_all(mem, fpstate, &fpbuf)?;
    io::write_all(mem, sp, &frame)?;
    Ok(Frame {
        sp,
        info: info_addr,
        ucontext,
    })
}

/// What `rt_sigreturn` restores.
pub struct Restored {
    /// Registers.
    pub regs: Regs,
    /// Signal mask.
    pub mask: u64,
    /// FP state to load, if the frame carried one.
    pub fp: Option<Vec<u8>>,
}

/// Reads the frame whose ucontext is at `ucontext` (rsp at the `rt_sigreturn`
/// call). `current` supplies the registers the frame does not hold; `fp_len` is the
/// size of the context's FP state.
pub fn restore(
    mem: &dyn AddressSpace,
    ucontext: u64,
    current: &Regs,
    fp_len: usize,
) -> SysResult<Restored> {
    let mut uc = vec![0u8; UCONTEXT_SIZE as usize];
    io::read_exact(mem, ucontext, &mut uc)?;
    let w = |i: usize| -> u64 {
        let o = 40 + i * 8;
        u64::from_le_bytes(uc[o..o + 8].try_into().unwrap_or([0; 8]))
    };
    let mut r = *current;
    r.r8 = w(0);
    r.r9 = w(1);
    r.r10 = w(2);
    r.r11 = w(3);
    r.r12 = w(4);
    r.r13 = w(5);
    r.r14 = w(6);
    r.r15 = w(7);
    r.rdi = w(8);
    r.rsi = w(9);
    r.rbp = w(10);
    r.rbx = w(11);
    r.rdx = w(12);
    r.rax = w(13);
    r.rcx = w(14);
    r.rsp = w(15);
    r.rip = w(16);
    // Only the flags user code may change (CF PF AF ZF SF TF DF OF RF AC ID...).
    const USER_FLAGS: u64 = 0x0025_4dd5;
    r.eflags = (current.eflags & !USER_FLAGS) | (w(17) & USER_FLAGS);
    // Selectors stay the kernel's: the app cannot switch to another segment.
    r.orig_rax = u64::MAX;
    let fpstate = w(23);
    let mask = u64::from_le_bytes(uc[296..304].try_into().map_err(|_| Errno::EFAULT)?);
    let fp = if fpstate != 0 && fp_len > 0 {
        let mut buf = vec![0u8; fp_len];
        io::read_exact(mem, fpstate, &mut buf)?;
        // The saved area's header may claim features the kernel never put there; the
        // platform validates what it loads, and MXCSR reserved bits would fault.
        let mxcsr = u32::from_le_bytes(buf[24..28].try_into().map_err(|_| Errno::EFAULT)?);
        if mxcsr & 0xffff_0000 != 0 {
            return Err(Errno::EFAULT);
        }
        Some(buf)
    } else {
        None
    };
    Ok(Restored { regs: r, mask, fp })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::fake::FakeSpace;
    use crate::platform::Backing;
    use crate::sys::pod::zeroed;

    #[test]
    fn roundtrip() {
        let space = FakeSpace::new();
        space
            .map(
                0x10000,
                0x10000,
                libc::PROT_READ | libc::PROT_WRITE,
                false,
                Backing::Anonymous,
            )
            .unwrap();
        let mut regs: Regs = zeroed();
        regs.rsp = 0x1f000;
        regs.rip = 0x401000;
        regs.rax = 42;
        regs.r15 = 7;
        regs.eflags = 0x246;
        let mut fp = vec![0u8; 832];
        fp[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
        fp[512] = 3;
        let info = SigInfo {
            signo: 10,
            pid: 5,
            ..Default::default()
        };
        let f = build(
            &*space,
            &regs,
            &fp,
            &info,
            0x55,
            &AltStack::default(),
            false,
            0x400500,
        )
        .unwrap();
        assert_eq!((f.sp + 8) % 16, 0);
        assert!(f.sp < regs.rsp - RED_ZONE);
        assert_eq!(io::read_u64(&*space, f.sp).unwrap(), 0x400500);
        let mut si = [0u8; 4];
        io::read_exact(&*space, f.info, &mut si).unwrap();
        assert_eq!(i32::from_le_bytes(si), 10);
        let back = restore(&*space, f.ucontext, &regs, fp.len()).unwrap();
        assert_eq!(
            (back.regs.rip, back.regs.rsp, back.regs.rax, back.regs.r15),
            (0x401000, 0x1f000, 42, 7)
        );
        assert_eq!(back.mask, 0x55);
        assert_eq!(back.fp.unwrap()[512], 3);
    }
}
